"""Queries and panels shared by the LogOps dashboards: the datasources, units and defaults
every panel gets, so each dashboard module only says what it shows."""

from __future__ import annotations

from typing import TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders.bargauge import Panel as BarGauge
from grafana_foundation_sdk.builders.logs import Panel as Logs
from grafana_foundation_sdk.builders.loki import Dataquery as LokiQuery
from grafana_foundation_sdk.builders.prometheus import Dataquery as PromQuery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.statetimeline import Panel as StateTimeline
from grafana_foundation_sdk.builders.table import Panel as Table
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Panel,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

# The uids the provisioned datasources carry (provisioning/datasources/logops.yml).
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
LOKI = DataSourceRef(type_val="loki", uid="loki")

GREEN, YELLOW, ORANGE, RED, BLUE = "green", "yellow", "orange", "red", "blue"
# (value, colour) steps; the first step's value is None, Grafana's "base".
Steps = list[tuple[float | None, str]]
P = TypeVar("P", Timeseries, Stat, BarGauge, Table, StateTimeline, Logs)


def thresholds(steps: Steps) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def prom(expr: str, legend: str = "", *, instant: bool = False) -> PromQuery:
    query = PromQuery().datasource(PROMETHEUS).expr(expr)
    if legend:
        query = query.legend_format(legend)
    return query.instant() if instant else query.range()


def loki(expr: str, legend: str = "") -> LokiQuery:
    query = LokiQuery().datasource(LOKI).expr(expr)
    return query.legend_format(legend) if legend else query


def _with_refs(panel: P, queries: tuple[PromQuery | LokiQuery, ...]) -> P:
    for index, query in enumerate(queries):
        panel = panel.with_target(query.ref_id(chr(ord("A") + index)))
    return panel


def timeseries(
    title: str,
    description: str,
    unit: str,
    *queries: PromQuery,
    steps: Steps | None = None,
    width: int = 12,
) -> Timeseries:
    """A line chart; with ``steps`` the thresholds are drawn as dashed lines."""
    panel = (
        Timeseries()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .min(0)
        .span(width)
        .height(8)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .thresholds(thresholds(steps or [(None, GREEN)]))
    )
    if steps:
        panel = panel.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    return _with_refs(panel, queries)


def dashed_series(panel: Timeseries, name_regexp: str) -> Timeseries:
    """Draw the series whose display name matches as a dashed line (limits and targets)."""
    return panel.override_by_regexp(
        name_regexp,
        [
            DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        ],
    )


def stat(
    title: str, description: str, unit: str, query: PromQuery, steps: Steps, width: int = 6
) -> Stat:
    """One number (an instant query), coloured by ``steps``."""
    panel = (
        Stat()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(width)
        .height(4)
        .thresholds(thresholds(steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.AUTO)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return _with_refs(panel, (query,))


def bar_gauge(
    title: str, description: str, unit: str, query: PromQuery, width: int = 12
) -> BarGauge:
    panel = (
        BarGauge()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .min(0)
        .span(width)
        .height(8)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .thresholds(thresholds([(None, BLUE)]))
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return _with_refs(panel, (query,))


def state_timeline(
    title: str, description: str, query: PromQuery, states: list[tuple[int, str, str]]
) -> StateTimeline:
    """A state over time; ``states`` maps each value to its text and colour."""
    mapping = ValueMap(
        options={
            str(value): ValueMappingResult(text=text, color=color, index=index)
            for index, (value, text, color) in enumerate(states)
        }
    )
    panel = (
        StateTimeline()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .span(12)
        .height(8)
        .mappings([mapping])
        .thresholds(thresholds([(None, states[0][2])]))
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
    )
    return _with_refs(panel, (query,))


def table(
    title: str, description: str, query: PromQuery, hide: list[str], width: int = 12
) -> Table:
    """An instant query as a table, without the columns named in ``hide``."""
    organize = DataTransformerConfig(
        id_val="organize", options={"excludeByName": dict.fromkeys(hide, True)}
    )
    panel = (
        Table()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .span(width)
        .height(8)
        .no_value("none")
        .with_transformation(organize)
    )
    return _with_refs(panel, (query,))


def table_query(expr: str) -> PromQuery:
    return prom(expr, instant=True).format(PromQueryFormat.TABLE)


def logs(title: str, description: str, query: LokiQuery, width: int = 24) -> Logs:
    panel = (
        Logs()
        .title(title)
        .description(description)
        .datasource(LOKI)
        .span(width)
        .height(12)
        .show_time(True)
        .show_labels(True)
        .wrap_log_message(True)
        .enable_log_details(True)
        .sort_order(common.LogsSortOrder.DESCENDING)
    )
    return _with_refs(panel, (query,))


def loki_timeseries(title: str, description: str, query: LokiQuery, width: int = 24) -> Timeseries:
    panel = (
        Timeseries()
        .title(title)
        .description(description)
        .datasource(LOKI)
        .unit("short")
        .min(0)
        .span(width)
        .height(8)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(60)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    )
    return _with_refs(panel, (query,))


def label_variable(name: str, label: str, metric: str, description: str) -> dash.QueryVariable:
    """A multi-value variable over one label's values; "All" matches every value."""
    return (
        dash.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(PROMETHEUS)
        .query(f"label_values({metric}, {name})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def logops_dashboard(title: str, uid: str, description: str) -> dash.Dashboard:
    """A LogOps dashboard: tagged, linked to the others, one crosshair across panels."""
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["logops"])
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("LogOps dashboards")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(["logops"])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(False)
        )
    )


def section(dashboard: dash.Dashboard, title: str, panels: list[Builder[Panel]]) -> dash.Dashboard:
    """An expanded row and the panels under it. (A row holding its panels itself must be
    collapsed: Grafana drops the panels of an expanded one.)"""
    dashboard = dashboard.with_row(dash.Row(title))
    for panel in panels:
        dashboard = dashboard.with_panel(panel)
    return dashboard
