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

from benchmarks.follow_latency import FollowResult, percentile_ms
from benchmarks.soak import SoakResult

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
    """Transcript files imported into the store: by the CLI, or by the library when no CLI."""

    path: str
    files: int
    expected: int
    stored: int
    seconds: float
    error: str = ""

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
    shown = f"{ratio:.1f}x" if at_least else f"{ratio:.2f}x"
    return Target(name, shown, f"{'>=' if at_least else '<='} {limit:g}x", met)


def targets(results: Results) -> list[Target]:
    """Compare each store's medians with the limits the design sets."""
    found: list[Target] = []
    first, last = results.sizes[0], results.sizes[-1]
    append = results.append_seconds
    loads = results.load_seconds
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
        if FLOOR in loads and store in loads:
            load = _ratio(median_ms(loads[store]), median_ms(loads[FLOOR]))
            name = f"{store}: load {results.load_size:,} / floor find"
            found.append(_ratio_target(name, load, 1.3))
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


def _load_section(results: Results) -> list[str]:
    rows = [
        [
            name,
            f"{median_ms(samples):.1f}",
            f"{min(samples) * 1000:.1f}",
            f"{results.load_peak_bytes.get(name, 0) / 2**20:.1f}",
        ]
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
            i.files,
            f"{i.expected:,}",
            f"{i.seconds:.2f}",
            f"{i.expected / i.seconds:,.0f}" if i.seconds else "-",
            _verdict(i.correct, i.stored, i.expected, i.error),
        ]
        for i in results.imports
    ]
    header = ["path", "files", "entries", "seconds", "entries/s", "correct"]
    return [
        "### Import of Claude Code transcripts",
        "",
        "Wall time from start to exit, including the interpreter's start-up for the CLI.",
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


def write_plot(results: Results, path: Path) -> None:
    """Draw append latency against session size (log axes) and load times as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, loads) = plt.subplots(1, 2, figsize=(13, 5))
    for name, by_size in results.append_seconds.items():
        sizes = sorted(by_size)
        latency.plot(sizes, [median_ms(by_size[s]) for s in sizes], marker="o", label=name)
    latency.set_xscale("log")
    latency.set_yscale("log")
    latency.set_xlabel("entries already in the session")
    latency.set_ylabel("median append latency, 5 entries (ms)")
    latency.set_title("Append latency as the session grows")
    latency.grid(True, which="both", alpha=0.3)
    latency.legend()
    names = list(results.load_seconds)
    wrapped = [n.replace(", ", ",\n").replace(" (", "\n(") for n in names]  # long names overlap
    bars = loads.bar(wrapped, [median_ms(results.load_seconds[n]) for n in names])
    loads.bar_label(bars, fmt="%.0f ms")
    loads.set_ylabel("median load time (ms)")
    loads.set_title(f"Load of a {results.load_size:,}-entry session")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
