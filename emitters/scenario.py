"""Scenario files (``scenarios/*.yaml``, PRODUCT.md section 7): the model, loading, scaling.

A scenario names a duration, its emitters (format, transport, rate shape, content knobs),
optional steps at time offsets (``outage`` stops Ingest mid-run) and its expectations.
:func:`load` reads a file and checks all of it, collecting every problem with its line
and column (:class:`ScenarioError`) rather than stopping at the first; the rules live in
:mod:`emitters.scenario_check`. The seed project's files (``name``, ``duration_sec``,
``tick_sec``, ``emitters[].name/eps/args/schedule``) load too: missing format and
transport default to ``json`` over ``grpc``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emitters.expect import AlertExpectation, Expectation
from emitters.rate import Schedule
from emitters.scenario_yaml import Mark


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario file, and where."""

    mark: Mark
    message: str
    warning: bool = False

    def render(self, path: str) -> str:
        kind = "warning: " if self.warning else ""
        return f"{path}:{self.mark.line}:{self.mark.column}: {kind}{self.message}"


class ScenarioError(ValueError):
    """A scenario file that does not load; ``problems`` lists every error found."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path, self.problems = path, problems
        lines = [p.render(path) for p in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class Profile:
    """An emitter's ``schedule:`` (PRODUCT.md section 7)."""

    start_after_sec: float = 0.0
    ramp_up_sec: float = 0.0
    stop_after_sec: float | None = None
    ramp_down_sec: float = 0.0
    jitter_pct: float = 0.0


@dataclass(frozen=True, slots=True)
class Stage:
    duration_sec: float
    eps: float
    ramp: bool = False


@dataclass(frozen=True, slots=True)
class EmitterArgs:
    """Content and transport knobs under ``args:``. ``partial_ratio`` makes that share of
    records unparseable (Ingest refuses them alone: partial success); ``chaos`` replaces
    that share by ``noise`` lines; ``signing`` is ``valid``, ``bad_secret`` (every push
    refused ``bad_signature``), ``fixed_nonce`` (the second push on is a ``replay``) or
    ``none``; ``retries: false`` sends each batch once (a refusal stays a refusal)."""

    seed: int | None = None
    error_ratio: float = 0.05
    partial_ratio: float = 0.0
    chaos: float = 0.0
    missing_ts_ratio: float = 0.0
    missing_level_ratio: float = 0.0
    http_body: str = "json"
    gzip: bool = False
    framing: str = "octet"
    structured: bool = False
    signing: str = "valid"
    retries: bool = True
    linger_ms: float | None = None
    late_ms: float = 10.0
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EmitterSpec:
    name: str
    format: str = "json"
    transport: str = "grpc"
    eps: float = 10.0
    batch_size: int = 100
    via: str | None = None
    # An explicit address for this emitter (a file's path; else the run's flags decide).
    target: str | None = None
    args: EmitterArgs = field(default_factory=EmitterArgs)
    profile: Profile | None = None
    stages: tuple[Stage, ...] = ()

    def schedule(self, duration_sec: float) -> Schedule:
        """The emitter's rate over the run: its stages, or its profile, or a constant."""
        seed = self.args.seed
        if self.stages:
            stages = [
                {"duration_sec": s.duration_sec, "eps": s.eps, "ramp": s.ramp}
                for s in self.stages
            ]
            jitter = self.profile.jitter_pct if self.profile else 0.0
            return Schedule.from_stages(stages, jitter_pct=jitter, seed=seed)
        p = self.profile or Profile()
        return Schedule.from_profile(
            self.eps,
            duration_sec,
            start_after_sec=p.start_after_sec,
            ramp_up_sec=p.ramp_up_sec,
            stop_after_sec=p.stop_after_sec,
            ramp_down_sec=p.ramp_down_sec,
            jitter_pct=p.jitter_pct,
            seed=seed,
        )

    @property
    def peak_eps(self) -> float:
        return max((s.eps for s in self.stages), default=self.eps)


@dataclass(frozen=True, slots=True)
class Step:
    """Something done at ``at_sec`` into the run: a built-in ``action`` (``stop_ingest``,
    ``start_ingest``) or a shell command ``run``."""

    at_sec: float
    action: str | None = None
    run: str | None = None

    @property
    def label(self) -> str:
        return self.action or f"run: {self.run}"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    duration_sec: float
    emitters: tuple[EmitterSpec, ...]
    expect: tuple[Expectation | AlertExpectation, ...] = ()
    steps: tuple[Step, ...] = ()
    description: str = ""
    tick_sec: float = 1.0
    # Seconds given after the emitters end for what is still in flight to land (the
    # outage's spool drains then); scaled with the rest.
    settle_sec: float = 0.0
    # The scale ``--short`` uses for this scenario (default 0.2): an outage needs to last
    # longer than the Auth Gateway's retries to be one.
    short_scale: float | None = None

    def scaled(self, factor: float) -> Scenario:
        """Every duration and offset times ``factor`` (rates unchanged): ``--short``."""
        if factor == 1.0:
            return self
        if not 0 < factor <= 1:
            raise ValueError("the scale must be above 0 and at most 1")

        def sec(value: float) -> float:
            return round(value * factor, 3)

        emitters = tuple(
            dataclasses.replace(
                e,
                profile=_scaled_profile(e.profile, sec),
                stages=tuple(dataclasses.replace(s, duration_sec=sec(s.duration_sec))
                             for s in e.stages),
            )
            for e in self.emitters
        )
        return dataclasses.replace(
            self,
            duration_sec=sec(self.duration_sec),
            emitters=emitters,
            steps=tuple(dataclasses.replace(s, at_sec=sec(s.at_sec)) for s in self.steps),
            settle_sec=sec(self.settle_sec),
            short_scale=None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The scenario as plain data, in the file's own shape (``scenario.yaml``)."""
        return _scenario_dict(self)


def _scaled_profile(p: Profile | None, sec: Any) -> Profile | None:
    if p is None:
        return None
    return dataclasses.replace(
        p,
        start_after_sec=sec(p.start_after_sec),
        ramp_up_sec=sec(p.ramp_up_sec),
        stop_after_sec=None if p.stop_after_sec is None else sec(p.stop_after_sec),
        ramp_down_sec=sec(p.ramp_down_sec),
    )


def _scenario_dict(sc: Scenario) -> dict[str, Any]:
    out: dict[str, Any] = {"name": sc.name}
    if sc.description:
        out["description"] = sc.description
    out["duration_sec"] = sc.duration_sec
    if sc.settle_sec:
        out["settle_sec"] = sc.settle_sec
    if sc.short_scale is not None:
        out["short_scale"] = sc.short_scale
    out["emitters"] = [_emitter_dict(e) for e in sc.emitters]
    if sc.steps:
        out["steps"] = [
            {"at_sec": s.at_sec, **({"action": s.action} if s.action else {"run": s.run})}
            for s in sc.steps
        ]
    out["expect"] = [
        e.expr if isinstance(e, Expectation)
        else {"alert": e.alert, "state": e.state, "within_sec": e.within_sec}
        for e in sc.expect
    ]
    return out


def _emitter_dict(e: EmitterSpec) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": e.name, "format": e.format, "transport": e.transport,
        "eps": e.eps, "batch_size": e.batch_size,
    }
    if e.via:
        d["via"] = e.via
    if e.target:
        d["target"] = e.target
    args = {f.name: getattr(e.args, f.name) for f in dataclasses.fields(EmitterArgs)}
    extra = dict(args.pop("extra"))
    d["args"] = {**{k: v for k, v in args.items() if v is not None}, **extra}
    if e.stages:
        d["stages"] = [
            {"duration_sec": s.duration_sec, "eps": s.eps, **({"ramp": True} if s.ramp else {})}
            for s in e.stages
        ]
    if e.profile is not None:
        d["schedule"] = {
            k: v for k, v in dataclasses.asdict(e.profile).items() if v  # set ones only
        }
    return d


def load(path: str | Path) -> tuple[Scenario, list[Problem]]:
    """The scenario in ``path`` and its warnings; ``ScenarioError`` listing every error."""
    from emitters.scenario_check import check_text

    text = Path(path).read_text(encoding="utf-8")
    return check_text(text, str(path))


def loads(text: str, path: str = "<scenario>") -> tuple[Scenario, list[Problem]]:
    from emitters.scenario_check import check_text

    return check_text(text, path)
