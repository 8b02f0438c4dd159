from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LogRecord(_message.Message):
    __slots__ = ("ts", "level", "msg", "service", "host", "fields", "stream", "seq", "raw", "format")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MSG_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    ts: str
    level: str
    msg: str
    service: str
    host: str
    fields: _containers.ScalarMap[str, str]
    stream: str
    seq: int
    raw: str
    format: str
    def __init__(self, ts: _Optional[str] = ..., level: _Optional[str] = ..., msg: _Optional[str] = ..., service: _Optional[str] = ..., host: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., stream: _Optional[str] = ..., seq: _Optional[int] = ..., raw: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("batch_id", "emitter", "scenario_id", "run_id", "records")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    EMITTER_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    emitter: str
    scenario_id: str
    run_id: str
    records: _containers.RepeatedCompositeFieldContainer[LogRecord]
    def __init__(self, batch_id: _Optional[str] = ..., emitter: _Optional[str] = ..., scenario_id: _Optional[str] = ..., run_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[LogRecord, _Mapping]]] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: LogBatch
    def __init__(self, batch: _Optional[_Union[LogBatch, _Mapping]] = ...) -> None: ...

class RecordRejection(_message.Message):
    __slots__ = ("index", "reason", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    reason: str
    message: str
    def __init__(self, index: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class MissingFieldCounts(_message.Message):
    __slots__ = ("ts_absent", "ts_invalid", "level_absent", "level_invalid")
    TS_ABSENT_FIELD_NUMBER: _ClassVar[int]
    TS_INVALID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_ABSENT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_INVALID_FIELD_NUMBER: _ClassVar[int]
    ts_absent: int
    ts_invalid: int
    level_absent: int
    level_invalid: int
    def __init__(self, ts_absent: _Optional[int] = ..., ts_invalid: _Optional[int] = ..., level_absent: _Optional[int] = ..., level_invalid: _Optional[int] = ...) -> None: ...

class PushResponse(_message.Message):
    __slots__ = ("batch_id", "accepted", "rejected", "rejections", "duplicate", "spooled", "missing", "request_id")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    SPOOLED_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    accepted: int
    rejected: int
    rejections: _containers.RepeatedCompositeFieldContainer[RecordRejection]
    duplicate: bool
    spooled: bool
    missing: MissingFieldCounts
    request_id: str
    def __init__(self, batch_id: _Optional[str] = ..., accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[RecordRejection, _Mapping]]] = ..., duplicate: _Optional[bool] = ..., spooled: _Optional[bool] = ..., missing: _Optional[_Union[MissingFieldCounts, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...
