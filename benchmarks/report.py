"""The benchmark's results: what was measured, the markdown report, the targets and the plot.

Usage::

    from benchmarks.report import Results, render_markdown, write_plot

    results = Results(machine={...}, sizes=[10, 1000, 10000], load_size=10000)
    results.append_seconds["store (pymongo)"] = {10: [0.0021, ...], ...}   # filled by run.py
    print(render_markdown(results))
    write_plot(results, Path("benchmarks/results/latest.png"))

Targets are read, never asserted: each compares medians measured side by side in the same run.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.follow_latency import FollowResult, percentile_ms
from benchmarks.limits import LimitsResult
from benchmarks.soak import SoakResult

from session_store_mongo.cli.app import DEFAULT_JOBS

__all__ = [
    "ENCRYPTED",
    "FLOOR",
    "PLAIN",
    "SEED",
    "ImportResult",
    "PastLimitResult",
    "Results",
    "Target",
    "WritersResult",
    "render_markdown",
    "targets",
    "write_plot",
]

FLOOR = "floor (bare driver)"
SEED = "seed design (one doc)"
PLAIN = "store (pymongo)"
ENCRYPTED = "encrypted store (pymongo)"
"""Held to no target of the plain design; the encryption section compares it with ``PLAIN``."""
_STORE_PREFIX = "store"


def median_ms(samples: Sequence[float]) -> float:
    """Median of samples in seconds, in milliseconds."""
    return statistics.median(samples) * 1000


def p95_ms(samples: Sequence[float]) -> float:
    """95th percentile of samples in seconds, in milliseconds."""
    if len(samples) < 2:
        return median_ms(samples)
    return statistics.quantiles(samples, n=20, method="inclusive")[18] * 1000


@dataclass
class WritersResult:
    """Concurrent writers appending to the store, and what the sessions held afterwards."""

    label: str
    writers: int
    sessions: int
    expected: int
    seconds: float
    stored: int
    lost: int
    duplicated: int
    reordered: int

    @property
    def correct(self) -> bool:
        """Nothing lost, duplicated, or out of order within a writer."""
        return not (self.lost or self.duplicated or self.reordered)


@dataclass
class ImportResult:
    """A tree of transcript files imported by the CLI, and the bare driver inserting the same."""

    path: str
    files: int
    expected: int
    stored: int
    seconds: float
    floor_seconds: float
    error: str = ""
    repeats: int = 1
    """Runs of each, taking turns; the seconds are medians."""

    @property
    def correct(self) -> bool:
        """Every entry of every file stored, once."""
        return not self.error and self.stored == self.expected


@dataclass
class PastLimitResult:
    """One contestant filling a session past the 16 MB document limit."""

    contestant: str
    entry_bytes: int
    target_entries: int
    held: int
    fill_seconds: float
    append_seconds: list[float] = field(default_factory=list)
    load_seconds: list[float] = field(default_factory=list)
    loaded: int = 0
    error: str = ""


@dataclass
class Results:
    """Everything one run measured."""

    machine: dict[str, str]
    sizes: list[int]
    load_size: int
    append_seconds: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    load_seconds: dict[str, list[float]] = field(default_factory=dict)
    load_peak_bytes: dict[str, int] = field(default_factory=dict)
    writers: list[WritersResult] = field(default_factory=list)
    imports: list[ImportResult] = field(default_factory=list)
    past_limit: list[PastLimitResult] = field(default_factory=list)
    soak: SoakResult | None = None
    soak_readers: int = 0
    follow: list[FollowResult] = field(default_factory=list)
    limits: LimitsResult | None = None
    plan: str = ""


@dataclass(frozen=True)
class Target:
    """One performance or correctness target, with what this run measured."""

    name: str
    measured: str
    limit: str
    met: bool


def _cell(value: object) -> str:
    """One line of text that cannot break the table (error messages may hold anything)."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _verdict(correct: bool, stored: int, expected: int, problems: str = "") -> str:
    if correct:
        return f"yes ({stored:,}/{expected:,})"
    return f"NO: {problems or 'mismatch'} ({stored:,}/{expected:,})"


def _stores(results: Results) -> list[str]:
    return [name for name in results.append_seconds if name.startswith(_STORE_PREFIX)]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")


def _ratio_target(name: str, ratio: float, limit: float, *, at_least: bool = False) -> Target:
    """A target on a measured ratio: at most ``limit`` (or at least, for speed-ups)."""
    met = ratio >= limit if at_least else ratio <= limit
    shown = f"{ratio:.1f}x" if at_least and ratio >= 10 else f"{ratio:.2f}x"
    return Target(name, shown, f"{'>=' if at_least else '<='} {limit:g}x", met)


_BARE_FIND = "bare find, whole documents"
_LOAD_LIMIT = 1.1
_SUMMARIES_LIMIT = 1.2
_REAPPEND_LIMIT = 1.3
_COMMANDS_PER_APPEND = 2
_EXPORT_EXTRA_MB = 64
"""What an export may hold above a process that only connects: about one driver batch."""


def _commands_per_append(appends: Sequence[Sequence[str]]) -> float:
    return statistics.mean(len(commands) for commands in appends)


def _limits_targets(limits: LimitsResult) -> list[Target]:
    found = []
    bare = limits.load_seconds.get(_BARE_FIND)
    for reader in ("store.load", "store.iter_entries"):
        if bare and reader in limits.load_seconds:
            ratio = _ratio(median_ms(limits.load_seconds[reader]), median_ms(bare))
            name = f"{reader} of {limits.load_entries:,} entries / bare find of its documents"
            found.append(_ratio_target(name, ratio, _LOAD_LIMIT))
    for count, seconds in limits.summaries_seconds.items():
        ratio = _ratio(median_ms(seconds["store"]), median_ms(seconds["bare find"]))
        name = f"list_session_summaries at {count:,} sessions / bare find of their documents"
        found.append(_ratio_target(name, ratio, _SUMMARIES_LIMIT))
    for count, commands in limits.summaries_commands.items():
        others = [name for name in commands if name not in ("find", "getMore")]
        found.append(
            Target(
                f"list_session_summaries at {count:,} sessions: queries besides the one find",
                str(len(others)),
                "0",
                not others,
            )
        )
    for kind, appends in limits.commands.items():
        mean = _commands_per_append(appends)
        found.append(
            Target(
                f"commands per append, {kind}",
                f"{mean:.1f}",
                f"<= {_COMMANDS_PER_APPEND}",
                mean <= _COMMANDS_PER_APPEND,
            )
        )
    if len(limits.reappend_seconds) == 2:
        short, long = sorted(limits.reappend_seconds)
        ratio = _ratio(
            median_ms(limits.reappend_seconds[long]), median_ms(limits.reappend_seconds[short])
        )
        name = f"re-append of {limits.reappend_batch} stored entries, at {long:,} / at {short:,}"
        found.append(_ratio_target(name, ratio, _REAPPEND_LIMIT))
    if "export (CLI)" in limits.huge and "connect only" in limits.huge:
        extra = limits.huge["export (CLI)"][1] - limits.huge["connect only"][1]
        found.append(
            Target(
                f"export of {limits.huge_entries:,} entries: peak memory above connecting",
                f"{extra:.0f} MB",
                f"<= {_EXPORT_EXTRA_MB} MB",
                extra <= _EXPORT_EXTRA_MB,
            )
        )
    elif limits.huge_error:
        found.append(Target("export of a huge session", limits.huge_error, "works", False))
    return found


def targets(results: Results) -> list[Target]:
    """Compare each store's medians with the limits the design sets."""
    found: list[Target] = []
    first, last = results.sizes[0], results.sizes[-1]
    append = results.append_seconds
    for store in _stores(results):
        at_last = median_ms(append[store][last])
        flat = _ratio(at_last, median_ms(append[store][first]))
        found.append(_ratio_target(f"{store}: append at {last:,} / at {first:,}", flat, 1.3))
        if FLOOR in append:
            floor = _ratio(at_last, median_ms(append[FLOOR][last]))
            name = f"{store}: append / floor insert_many at {last:,}"
            found.append(_ratio_target(name, floor, 2.5))
        if SEED in append:
            speedup = _ratio(median_ms(append[SEED][last]), at_last)
            name = f"{store}: speed-up over the seed design, append at {last:,}"
            found.append(_ratio_target(name, speedup, 10, at_least=True))
    if results.limits is not None:
        found += _limits_targets(results.limits)
    for imported in results.imports:
        speed = _ratio(imported.floor_seconds, imported.seconds)
        name = f"import of {imported.files:,} sessions: throughput / bare insert_many"
        found.append(_ratio_target(name, speed, 0.5, at_least=True))
    verdicts = [w.correct for w in results.writers] + [i.correct for i in results.imports]
    verdicts += [f.correct for f in results.follow]
    if results.soak is not None:
        verdicts.append(results.soak.complete)
    found.append(
        Target(
            "writers, import, follow and soak: nothing lost, duplicated or reordered",
            f"{sum(verdicts)}/{len(verdicts)} runs correct",
            "all",
            bool(verdicts) and all(verdicts),
        )
    )
    return found


def _append_section(results: Results) -> list[str]:
    header = ["contestant", *(f"{size:,} entries" for size in results.sizes)]
    rows = [
        [name, *(f"{median_ms(by[s]):.2f} ({p95_ms(by[s]):.2f})" for s in results.sizes)]
        for name, by in results.append_seconds.items()
    ]
    count = len(next(iter(results.append_seconds.values()))[results.sizes[0]])
    return [
        "### Append latency",
        "",
        f"One batch of 5 entries (1-1.8 KB each) into a session already holding N entries: "
        f"median (p95) in ms over {count} appends, contestants and sizes in a shuffled order. "
        "Each append adds 5 entries to that session.",
        "",
        *_table(header, rows),
    ]


def _median_best(samples: Sequence[float]) -> list[str]:
    return [f"{median_ms(samples):.1f}", f"{min(samples) * 1000:.1f}"]


def _load_section(results: Results) -> list[str]:
    rows = [
        [name, *_median_best(samples), f"{results.load_peak_bytes.get(name, 0) / 2**20:.1f}"]
        for name, samples in results.load_seconds.items()
    ]
    count = len(next(iter(results.load_seconds.values())))
    return [
        f"### Load of a {results.load_size:,}-entry session",
        "",
        f"Median and best of {count} loads, interleaved; peak = tracemalloc peak of the process "
        "during one more load (includes the returned list).",
        "",
        *_table(["contestant", "median ms", "best ms", "peak MB"], rows),
    ]


def _writers_section(results: Results) -> list[str]:
    rows = [
        [
            w.label,
            w.writers,
            w.sessions,
            f"{w.expected:,}",
            f"{w.seconds:.2f}",
            f"{w.expected / w.seconds:,.0f}",
            _verdict(
                w.correct,
                w.stored,
                w.expected,
                f"{w.lost} lost, {w.duplicated} duplicated, {w.reordered} reordered",
            ),
        ]
        for w in results.writers
    ]
    header = ["scenario", "writers", "sessions", "entries", "seconds", "entries/s", "correct"]
    return [
        "### Concurrent writers (store, PyMongo async)",
        "",
        "Each writer appends batches of 5 concurrently; afterwards every session is loaded and "
        "checked: every entry once, each writer's entries in the order it appended them.",
        "",
        *_table(header, rows),
    ]


def _import_section(results: Results) -> list[str]:
    rows = [
        [
            i.path,
            f"{i.files:,}",
            f"{i.expected:,}",
            f"{i.seconds:.2f}",
            f"{i.expected / i.seconds:,.0f}" if i.seconds else "-",
            f"{i.expected / i.floor_seconds:,.0f}" if i.floor_seconds else "-",
            _verdict(i.correct, i.stored, i.expected, i.error),
        ]
        for i in results.imports
    ]
    header = ["path", "sessions", "entries", "seconds", "entries/s", "floor entries/s", "correct"]
    return [
        "### Import of a tree of Claude Code sessions",
        "",
        "The CLI's wall time from start to exit (the interpreter's start-up included; "
        f"{DEFAULT_JOBS} sessions at a time). The floor: one bare `insert_many` of 500 after "
        "another of the same entries, already parsed, into a collection with the store's unique "
        "indexes. The two take turns into fresh databases; medians of "
        f"{max(i.repeats for i in results.imports)} runs each.",
        "",
        *_table(header, rows),
    ]


def _past_limit_section(results: Results) -> list[str]:
    rows = []
    for p in results.past_limit:
        outcome = p.error or f"works: loaded {p.loaded:,} entries"
        rows.append(
            [
                p.contestant,
                f"{p.target_entries:,} x {p.entry_bytes / 1024:.0f} KB",
                f"{p.held:,}",
                f"{p.held * p.entry_bytes / 2**20:.1f}",
                f"{p.fill_seconds:.2f}",
                f"{median_ms(p.append_seconds):.1f}" if p.append_seconds else "-",
                f"{median_ms(p.load_seconds):.0f}" if p.load_seconds else "-",
                outcome,
            ]
        )
    header = [
        "contestant",
        "asked",
        "entries held",
        "MB held",
        "fill s",
        "append ms",
        "load ms",
        "result",
    ]
    return [
        "### Sessions past the 16 MB document limit",
        "",
        "Filled by appends of a batch at a time; then (if it got there) median append of 5 more "
        "entries and median load.",
        "",
        *_table(header, rows),
    ]


def _soak_section(soak: SoakResult, readers: int) -> list[str]:
    header = ["sessions", "appends", "readers", "entries", "errors", "p50 ms", "p99 ms"]
    header += ["seconds", "correct"]
    row = [
        soak.sessions,
        f"{soak.appends:,}",
        readers,
        f"{soak.entries:,}",
        soak.errors,
        f"{soak.p50_ms:.2f}",
        f"{soak.p99_ms:.2f}",
        f"{soak.seconds:.1f}",
        "yes" if soak.complete else "NO: a transcript differs from its acknowledged entries",
    ]
    return [
        "### Soak (benchmarks/soak.py)",
        "",
        "One writer per session appending small batches while readers load random sessions; "
        "correct = every transcript holds exactly its acknowledged entries, in order.",
        "",
        *_table(header, [row]),
    ]


def _follow_section(results: list[FollowResult]) -> list[str]:
    header = ["follower", "appends", "p50 ms after ack", "p99 ms after ack", "p50 ms after call"]
    header += ["p99 ms after call", "correct"]
    rows = [
        [
            result.mode,
            result.appends,
            f"{percentile_ms(result.after_ack, 50):.1f}",
            f"{percentile_ms(result.after_ack, 99):.1f}",
            f"{percentile_ms(result.after_call, 50):.1f}",
            f"{percentile_ms(result.after_call, 99):.1f}",
            _verdict(result.correct, result.delivered, result.appends, "lost or reordered"),
        ]
        for result in results
    ]
    return [
        "### Follow latency (benchmarks/follow_latency.py)",
        "",
        "One entry per append to a main transcript, at uneven intervals; time until a follower "
        "on another client has it, from the writer's acknowledgement and from its call. The "
        "entry is visible once inserted, before the append's last round trip returns, so a "
        "change stream often delivers it before the acknowledgement (negative).",
        "",
        *_table(header, rows),
    ]


def _encryption_section(results: Results) -> list[str]:
    append, loads = results.append_seconds, results.load_seconds
    rows = [
        [
            f"append 5 entries at {size:,}",
            f"{median_ms(append[PLAIN][size]):.2f}",
            f"{median_ms(append[ENCRYPTED][size]):.2f}",
            f"{_ratio(median_ms(append[ENCRYPTED][size]), median_ms(append[PLAIN][size])):.2f}x",
        ]
        for size in results.sizes
    ]
    if PLAIN in loads and ENCRYPTED in loads:
        plain, encrypted = median_ms(loads[PLAIN]), median_ms(loads[ENCRYPTED])
        rows.append(
            [
                f"load {results.load_size:,} entries",
                f"{plain:.1f}",
                f"{encrypted:.1f}",
                f"{_ratio(encrypted, plain):.2f}x",
            ]
        )
    return [
        "### Encryption overhead",
        "",
        "The encrypted store (one data key per project, local master key) against the plain "
        "store, both through PyMongo async, interleaved in the same run: medians in ms and "
        "their ratio.",
        "",
        *_table(["operation", "plain ms", "encrypted ms", "encrypted / plain"], rows),
    ]


def _load_vs_find_section(limits: LimitsResult) -> list[str]:
    bare = median_ms(limits.load_seconds[_BARE_FIND])
    rows = [
        [name, *_median_best(samples), f"{_ratio(median_ms(samples), bare):.2f}x"]
        for name, samples in limits.load_seconds.items()
    ]
    whole = limits.load_bytes.get("whole documents", 0)
    projected = limits.load_bytes.get("inclusion projection", 0)
    count = len(next(iter(limits.load_seconds.values())))
    return [
        f"### Load of {limits.load_entries:,} entries against a bare find of the same documents",
        "",
        f"Median and best of {count} runs, interleaved, on the store's own collection: the bare "
        "find filters on the key, sorts by `seq` (the `entry_seq` index) and returns whole "
        f"documents. The server sends {whole / 2**20:.1f} MB of whole documents, "
        f"{projected / 2**20:.1f} MB with the inclusion projection "
        f"({_ratio(whole - projected, projected) * 100:.0f}% more for whole documents).",
        "",
        *_table(["reader", "median ms", "best ms", "median / bare find"], rows),
    ]


def _round_trips_section(limits: LimitsResult) -> list[str]:
    rows = []
    for kind, appends in limits.commands.items():
        shapes = statistics.mode(", ".join(commands) for commands in appends)
        rows.append([kind, f"{_commands_per_append(appends):.1f}", shapes])
    for size, commands in sorted(limits.reappend_commands.items()):
        seconds = limits.reappend_seconds[size]
        rows.append(
            [
                f"re-append of {limits.reappend_batch} stored entries to a session of {size:,} "
                f"(median {median_ms(seconds):.0f} ms)",
                str(len(commands)),
                ", ".join(commands),
            ]
        )
    count = len(next(iter(limits.commands.values()), []))
    return [
        "### Commands per append",
        "",
        f"Counted by a command listener over {count} steady-state appends of 5 entries each "
        "(the most common sequence shown), and for re-appending a batch already stored.",
        "",
        *_table(["append", "commands", "sequence"], rows),
    ]


def _summaries_section(limits: LimitsResult) -> list[str]:
    rows = []
    for count, seconds in limits.summaries_seconds.items():
        store, bare = median_ms(seconds["store"]), median_ms(seconds["bare find"])
        commands = limits.summaries_commands.get(count, [])
        rows.append(
            [f"{count:,}", f"{store:.1f}", f"{bare:.1f}", f"{_ratio(store, bare):.2f}x",
             ", ".join(commands)]
        )  # fmt: skip
    header = ["sessions", "store ms", "bare find ms", "store / bare", "commands"]
    return [
        "### list_session_summaries",
        "",
        "Median over interleaved runs; the bare find reads the same session documents (the "
        "project's main transcripts). The larger project holds copies of the smaller one's "
        "session documents under new ids.",
        "",
        *_table(header, rows),
    ]


def _huge_section(limits: LimitsResult) -> list[str]:
    if limits.huge_error:
        return ["### A huge session", "", f"Failed: {_cell(limits.huge_error)}", ""]
    rows = [
        [name, f"{seconds:.1f}", f"{peak:.0f}"] for name, (seconds, peak) in limits.huge.items()
    ]
    return [
        f"### A {limits.huge_entries:,}-entry session",
        "",
        f"Each in a process of its own: seconds and peak resident memory. The exported file holds "
        f"{limits.huge_file_bytes / 2**20:.0f} MB; connect only = the interpreter, the library "
        "and one query.",
        "",
        *_table(["process", "seconds", "peak MB"], rows),
    ]


def _limits_sections(limits: LimitsResult) -> list[str]:
    lines: list[str] = []
    if limits.load_seconds:
        lines += _load_vs_find_section(limits)
    if limits.commands:
        lines += _round_trips_section(limits)
    if limits.summaries_seconds:
        lines += _summaries_section(limits)
    if limits.huge or limits.huge_error:
        lines += _huge_section(limits)
    return lines


def render_markdown(results: Results) -> str:
    """The whole report: tables, targets, then the machine it ran on."""
    lines = ["## Benchmark results", ""]
    if results.plan:
        lines += [results.plan, ""]
    if results.append_seconds:
        lines += _append_section(results)
    if results.load_seconds:
        lines += _load_section(results)
    if PLAIN in results.append_seconds and ENCRYPTED in results.append_seconds:
        lines += _encryption_section(results)
    if results.limits is not None:
        lines += _limits_sections(results.limits)
    if results.writers:
        lines += _writers_section(results)
    if results.imports:
        lines += _import_section(results)
    if results.past_limit:
        lines += _past_limit_section(results)
    if results.follow:
        lines += _follow_section(results.follow)
    if results.soak is not None:
        lines += _soak_section(results.soak, results.soak_readers)
    rows = [[t.name, t.measured, t.limit, "met" if t.met else "MISSED"] for t in targets(results)]
    lines += ["### Targets", "", *_table(["target", "measured", "limit", "verdict"], rows)]
    lines += ["### Machine", "", *(f"- {k}: {v}" for k, v in results.machine.items()), ""]
    return "\n".join(lines)


def _bars(axes: Any, values: dict[str, float], label: str, fmt: str, title: str) -> None:
    wrapped = [n.replace(", ", ",\n").replace(" (", "\n(") for n in values]  # long names overlap
    bars = axes.bar(wrapped, list(values.values()))
    axes.bar_label(bars, fmt=fmt)
    axes.set_ylabel(label)
    axes.set_title(title)
    axes.tick_params(axis="x", labelsize=8)


def write_plot(results: Results, path: Path) -> None:
    """Draw append latency against session size (log axes), load times, and the limits runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limits = results.limits
    figure, grid = plt.subplots(2, 2, figsize=(14, 10))
    latency, loads, readers, huge = grid.flat
    for name, by_size in results.append_seconds.items():
        sizes = sorted(by_size)
        latency.plot(sizes, [median_ms(by_size[s]) for s in sizes], marker="o", label=name)
    latency.set_xscale("log")
    latency.set_yscale("log")
    latency.set_xlabel("entries already in the session")
    latency.set_ylabel("median append latency, 5 entries (ms)")
    latency.set_title("Append latency as the session grows")
    latency.grid(True, which="both", alpha=0.3)
    latency.legend(fontsize=8)
    _bars(
        loads,
        {name: median_ms(samples) for name, samples in results.load_seconds.items()},
        "median load time (ms)",
        "%.0f ms",
        f"Load of a {results.load_size:,}-entry session",
    )
    if limits is not None and limits.load_seconds:
        _bars(
            readers,
            {name: median_ms(samples) for name, samples in limits.load_seconds.items()},
            "median time (ms)",
            "%.0f ms",
            f"{limits.load_entries:,} entries: the store against a bare find of its documents",
        )
    else:
        readers.set_visible(False)
    if limits is not None and limits.huge:
        _bars(
            huge,
            {name: peak for name, (_, peak) in limits.huge.items()},
            "peak resident memory (MB)",
            "%.0f MB",
            f"A {limits.huge_entries:,}-entry session: export and load",
        )
    else:
        huge.set_visible(False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
