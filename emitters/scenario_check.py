"""The rules of a scenario file, checked all at once with the line and column of each problem.

:func:`check_text` reads YAML with positions (:mod:`emitters.scenario_yaml`), walks it
key by key, and either builds the :class:`~emitters.scenario.Scenario` or raises
:class:`~emitters.scenario.ScenarioError` with every error it found. Unknown ``args`` keys
are warnings, not errors: the seed project's files carry knobs of their own.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from clients.targets import TRANSPORTS
from clients.transports import HTTP_BODIES
from emitters.expect import AlertExpectation, Expectation, parse_alert, parse_expression
from emitters.formats import FORMATS
from emitters.rate import MAX_EPS
from emitters.scenario import (
    EmitterArgs,
    EmitterSpec,
    Problem,
    Profile,
    Scenario,
    ScenarioError,
    Stage,
    Step,
)
from emitters.scenario_yaml import Located, Path, YamlSyntaxError, load_located

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOP_KEYS = ("name", "description", "duration_sec", "tick_sec", "settle_sec", "short_scale",
            "emitters", "steps", "expect")
EMITTER_KEYS = ("name", "format", "transport", "eps", "batch_size", "via", "target", "args",
                "schedule", "stages")
PROFILE_KEYS = ("start_after_sec", "ramp_up_sec", "stop_after_sec", "ramp_down_sec",
                "jitter_pct")
STEP_ACTIONS = ("stop_ingest", "start_ingest")
SIGNING = ("valid", "bad_secret", "fixed_nonce", "none")
FRAMINGS = ("octet", "lf")
MAX_BATCH = 10_000
GATEWAY = ("grpc", "http")


class _Checker:
    """Collects problems while reading one document."""

    def __init__(self, doc: Located) -> None:
        self.doc = doc
        self.problems = [Problem(m, msg) for m, msg in doc.problems]

    def error(self, path: Path, message: str, *, at_key: bool = False) -> None:
        mark = self.doc.key_at(path) if at_key else self.doc.at(path)
        self.problems.append(Problem(mark, message))

    def warn(self, path: Path, message: str) -> None:
        self.problems.append(Problem(self.doc.key_at(path), message, warning=True))

    def unknown_keys(self, obj: dict[str, Any], path: Path, known: tuple[str, ...]) -> None:
        for key in obj:
            if key not in known:
                self.error((*path, key), f"unknown key {key!r} (known: {', '.join(known)})",
                           at_key=True)

    def mapping(self, value: Any, path: Path, what: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.error(path, f"{what} must be a mapping (key: value), not {_kind(value)}")
        return None

    def number(
        self, obj: dict[str, Any], key: str, path: Path, default: float | None = None, *,
        low: float = 0.0, high: float = math.inf, above: bool = False, required: bool = False,
    ) -> float | None:
        here = (*path, key)
        if key not in obj:
            if required:
                self.error(path, f"{'.'.join(map(str, here))} is required")
            return default
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value
        ):
            self.error(here, f"{key} must be a number, not {_kind(value)}")
            return default
        too_low = value <= low if above else value < low
        if too_low or value > high:
            bound = f"above {low:g}" if above else f"at least {low:g}"
            top = "" if math.isinf(high) else f" and at most {high:g}"
            self.error(here, f"{key} must be {bound}{top}, not {value:g}")
            return default
        return float(value)

    def text(self, obj: dict[str, Any], key: str, path: Path, default: str | None = None,
             choices: tuple[str, ...] = ()) -> str | None:
        here = (*path, key)
        if key not in obj:
            return default
        value = obj[key]
        if not isinstance(value, str):
            self.error(here, f"{key} must be text, not {_kind(value)}")
            return default
        if choices and value not in choices:
            self.error(here, f"{key} {value!r} is not one of {', '.join(choices)}")
            return default
        return value

    def flag(self, obj: dict[str, Any], key: str, path: Path, default: bool) -> bool:
        value = obj.get(key, default)
        if not isinstance(value, bool):
            self.error((*path, key), f"{key} must be true or false, not {_kind(value)}")
            return default
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def check_text(text: str, path: str) -> tuple[Scenario, list[Problem]]:
    """The scenario in ``text`` and its warnings, or ``ScenarioError`` with every error."""
    try:
        doc = load_located(text)
    except YamlSyntaxError as exc:
        raise ScenarioError(path, [Problem(exc.mark, str(exc))]) from None
    ck = _Checker(doc)
    scenario = _scenario(ck, doc.value)
    errors = [p for p in ck.problems if not p.warning]
    if errors or scenario is None:
        ordered = sorted(ck.problems, key=lambda p: (p.mark.line, p.mark.column))
        raise ScenarioError(path, ordered)
    return scenario, [p for p in ck.problems if p.warning]


def _scenario(ck: _Checker, value: Any) -> Scenario | None:
    top = ck.mapping(value, (), "a scenario")
    if top is None:
        return None
    ck.unknown_keys(top, (), TOP_KEYS)
    name = ck.text(top, "name", ())
    if name is None and "name" not in top:
        ck.error((), "name is required")
    elif name is not None and not NAME_RE.match(name):
        ck.error(("name",), "name may hold letters, digits, '-' and '_' only (1-64)")
    duration = ck.number(top, "duration_sec", (), required=True, above=True)
    tick = ck.number(top, "tick_sec", (), 1.0, above=True)
    settle = ck.number(top, "settle_sec", (), 0.0)
    short = ck.number(top, "short_scale", (), None, high=1.0, above=True)
    emitters = _emitters(ck, top, duration)
    steps = _steps(ck, top, (duration or 0.0) + (settle or 0.0))
    expect = _expectations(ck, top, {e.name for e in emitters})
    if name is None or duration is None or not emitters:
        return None
    return Scenario(
        name, duration, tuple(emitters), tuple(expect), tuple(steps),
        description=str(top.get("description") or ""), tick_sec=tick or 1.0,
        settle_sec=settle or 0.0, short_scale=short,
    )


def _emitters(ck: _Checker, top: dict[str, Any], duration: float | None) -> list[EmitterSpec]:
    items = top.get("emitters")
    if items is None:
        if "emitters" not in top:
            ck.error((), "emitters is required: a list of at least one emitter")
        else:
            ck.error(("emitters",), "emitters must list at least one emitter")
        return []
    if not isinstance(items, list) or not items:
        ck.error(("emitters",), "emitters must list at least one emitter")
        return []
    out: list[EmitterSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        spec = _emitter(ck, item, ("emitters", i), duration)
        if spec is None:
            continue
        if spec.name in seen:
            ck.error(("emitters", i, "name"), f"emitter name {spec.name!r} is used twice")
        seen.add(spec.name)
        out.append(spec)
    return out


def _emitter(
    ck: _Checker, item: Any, path: Path, duration: float | None
) -> EmitterSpec | None:
    obj = ck.mapping(item, path, "an emitter")
    if obj is None:
        return None
    ck.unknown_keys(obj, path, EMITTER_KEYS)
    name = ck.text(obj, "name", path)
    if name is None:
        if "name" not in obj:
            ck.error(path, "an emitter needs a name")
    elif not NAME_RE.match(name):
        ck.error((*path, "name"), "an emitter name may hold letters, digits, '-' and '_' only")
    fmt = ck.text(obj, "format", path, "json", tuple(FORMATS)) or "json"
    transport = ck.text(obj, "transport", path, "grpc", TRANSPORTS) or "grpc"
    via = ck.text(obj, "via", path, None, ("auth", "ingest"))
    if via is not None and transport not in GATEWAY:
        ck.error((*path, "via"), f"via applies to grpc and http emitters, not {transport}")
    target = ck.text(obj, "target", path, None)
    if transport == "file" and not target:
        ck.error(path, "a file emitter needs target: the path to append to")
    eps = ck.number(obj, "eps", path, 10.0, high=MAX_EPS, above=True,
                    required="stages" not in obj) or 10.0
    batch = ck.number(obj, "batch_size", path, 100.0, low=1, high=MAX_BATCH) or 100.0
    if batch != int(batch):
        ck.error((*path, "batch_size"), "batch_size must be a whole number")
    args = _args(ck, obj.get("args", {}), (*path, "args"), transport)
    profile, stages = _shape(ck, obj, path)
    spec = EmitterSpec(name or "?", fmt, transport, eps, int(batch), via, target, args,
                       profile, tuple(stages))
    try:
        if duration is not None:
            spec.schedule(duration)
    except ValueError as exc:
        where = "stages" if stages else "schedule"
        ck.error((*path, where) if where in obj else path, str(exc))
    return spec if name else None


_ARG_RATIOS = ("error_ratio", "partial_ratio", "chaos", "missing_ts_ratio",
               "missing_level_ratio")


def _args(ck: _Checker, value: Any, path: Path, transport: str) -> EmitterArgs:
    obj = ck.mapping(value if value is not None else {}, path, "args")
    if obj is None:
        return EmitterArgs()
    known = {f.name for f in dataclasses.fields(EmitterArgs) if f.name != "extra"}
    extra = {}
    for key in obj:
        if key not in known:
            ck.warn((*path, key), f"args.{key} is not a knob the runner knows; kept, unused")
            extra[key] = obj[key]
    ratios = {k: ck.number(obj, k, path, None, high=1.0) for k in _ARG_RATIOS}
    seed = obj.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        ck.error((*path, "seed"), f"seed must be a whole number, not {_kind(seed)}")
        seed = None
    body = ck.text(obj, "http_body", path, "json", tuple(HTTP_BODIES)) or "json"
    for key in ("partial_ratio", "chaos"):
        if ratios[key] and (transport not in GATEWAY or body == "text"):
            ck.error((*path, key), f"{key} needs a grpc or http (non-text body) transport: "
                     "the record's run_id, stream and seq must travel beside the line")
    signing = ck.text(obj, "signing", path, "valid", SIGNING) or "valid"
    if signing != "valid" and transport not in GATEWAY:
        ck.error((*path, "signing"), f"signing applies to grpc and http, not {transport}")
    linger = ck.number(obj, "linger_ms", path, None)
    return EmitterArgs(
        seed=seed,
        **{k: v for k, v in ratios.items() if v is not None},
        http_body=body,
        gzip=ck.flag(obj, "gzip", path, False),
        framing=ck.text(obj, "framing", path, "octet", FRAMINGS) or "octet",
        structured=ck.flag(obj, "structured", path, False),
        signing=signing,
        retries=ck.flag(obj, "retries", path, True),
        linger_ms=linger,
        late_ms=ck.number(obj, "late_ms", path, 10.0) or 10.0,
        extra=extra,
    )


def _shape(ck: _Checker, obj: dict[str, Any], path: Path) -> tuple[Profile | None, list[Stage]]:
    """The emitter's ``schedule`` and ``stages``. A list under ``schedule`` (as some seed
    files have) is read as stages."""
    sched, stages_value = obj.get("schedule"), obj.get("stages")
    key = "stages"
    if isinstance(sched, list) and stages_value is None:
        sched, stages_value, key = None, sched, "schedule"
    profile = None
    if sched is not None:
        profile = _profile(ck, sched, (*path, "schedule"), with_stages=stages_value is not None)
    stages: list[Stage] = []
    if stages_value is not None:
        if not isinstance(stages_value, list) or not stages_value:
            ck.error((*path, key), f"{key} must list at least one {{duration_sec, eps}}")
            return profile, []
        for i, item in enumerate(stages_value):
            stage = _stage(ck, item, (*path, key, i))
            if stage is not None:
                stages.append(stage)
    return profile, stages


def _profile(ck: _Checker, value: Any, path: Path, *, with_stages: bool) -> Profile | None:
    obj = ck.mapping(value, path, "schedule")
    if obj is None:
        return None
    ck.unknown_keys(obj, path, PROFILE_KEYS)
    if with_stages:
        for key in obj:
            if key in PROFILE_KEYS and key != "jitter_pct":
                ck.error((*path, key), f"with stages, schedule may only set jitter_pct, "
                         f"not {key}", at_key=True)
    n = ck.number
    return Profile(
        start_after_sec=n(obj, "start_after_sec", path, 0.0) or 0.0,
        ramp_up_sec=n(obj, "ramp_up_sec", path, 0.0) or 0.0,
        stop_after_sec=n(obj, "stop_after_sec", path, None, above=True),
        ramp_down_sec=n(obj, "ramp_down_sec", path, 0.0) or 0.0,
        jitter_pct=n(obj, "jitter_pct", path, 0.0, high=100.0) or 0.0,
    )


def _stage(ck: _Checker, item: Any, path: Path) -> Stage | None:
    obj = ck.mapping(item, path, "a stage")
    if obj is None:
        return None
    ck.unknown_keys(obj, path, ("duration_sec", "eps", "ramp"))
    duration = ck.number(obj, "duration_sec", path, required=True, above=True)
    eps = ck.number(obj, "eps", path, required=True, high=MAX_EPS)
    ramp = ck.flag(obj, "ramp", path, False)
    if duration is None or eps is None:
        return None
    return Stage(duration, eps, ramp)


def _steps(ck: _Checker, top: dict[str, Any], end: float) -> list[Step]:
    items = top.get("steps")
    if items is None:
        return []
    if not isinstance(items, list):
        ck.error(("steps",), "steps must be a list of {at_sec, action | run}")
        return []
    out = []
    for i, item in enumerate(items):
        path: Path = ("steps", i)
        obj = ck.mapping(item, path, "a step")
        if obj is None:
            continue
        ck.unknown_keys(obj, path, ("at_sec", "action", "run"))
        at = ck.number(obj, "at_sec", path, required=True, high=end)
        action = ck.text(obj, "action", path, None, STEP_ACTIONS)
        run = ck.text(obj, "run", path, None)
        if ("action" in obj) == ("run" in obj):
            ck.error(path, "a step needs exactly one of action "
                     f"({', '.join(STEP_ACTIONS)}) or run (a shell command)")
        elif at is not None and (action or run):
            out.append(Step(at, action, run))
    return out


def _expectations(
    ck: _Checker, top: dict[str, Any], names: set[str]
) -> list[Expectation | AlertExpectation]:
    items = top.get("expect")
    if items is None:
        return []
    if not isinstance(items, list):
        ck.error(("expect",), "expect must be a list of 'METRIC OP NUMBER' or {alert: ...}")
        return []
    out: list[Expectation | AlertExpectation] = []
    for i, item in enumerate(items):
        path: Path = ("expect", i)
        parse: Callable[[Any], Expectation | AlertExpectation]
        if isinstance(item, str):
            parse = parse_expression
        elif isinstance(item, dict):
            parse = parse_alert
        else:
            ck.error(path, f"an expectation is 'METRIC OP NUMBER' or a mapping, not {_kind(item)}")
            continue
        try:
            exp = parse(item)
        except ValueError as exc:
            ck.error(path, str(exc))
            continue
        if isinstance(exp, Expectation) and exp.emitter is not None and exp.emitter not in names:
            ck.error(path, f"no emitter is named {exp.emitter!r}")
            continue
        out.append(exp)
    return out
