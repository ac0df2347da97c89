"""Type stubs of the compiled module ``arbiter_safety._native`` (src/lib.rs)."""

import os
from typing import Any, Optional, Sequence, TypedDict

METHODS: list[str]

class ArbiterError(ValueError):
    """An error raised by the Arbiter crates; the message is theirs (column, row, value)."""

class UndefinedError(ArbiterError):
    """A statistic with no value on this data; the message says which case."""

class Table:
    """A ratings table (item, rater, label, optional group columns) held by Rust."""

    @property
    def n_items(self) -> int: ...
    @property
    def n_raters(self) -> int: ...
    @property
    def n_ratings(self) -> int: ...
    @property
    def n_duplicates(self) -> int: ...
    def items(self) -> list[Any]: ...
    def items_arrow(self) -> NamesColumn | None:
        """The items as an Arrow large_string column when every item is a ``str``."""
    def raters(self) -> list[Any]: ...
    def domain(self) -> list[Any]: ...
    def group_names(self) -> list[str]: ...

class NamesColumn:
    """Names as an Arrow column (the PyCapsule interface): ``pyarrow.array(column)``."""

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]: ...
    def __len__(self) -> int: ...

class Policy:
    """A validated RBR policy."""

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Policy: ...
    @staticmethod
    def from_toml(text: str, source_name: str = "<string>") -> Policy: ...
    @staticmethod
    def default() -> Policy: ...
    @property
    def name(self) -> str: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def propositions(self) -> list[str]: ...
    @property
    def response_types(self) -> list[str]: ...
    def classify(self, response_type_name: str, features: dict[str, float | bool]) -> tuple[str, dict[str, float]]: ...

class AlphaDict(TypedDict):
    alpha: Optional[float]
    undefined: Optional[str]
    level: str
    n_pairable_units: int
    n_pairable_values: float
    observed_disagreement: float
    expected_disagreement: float

class MultiRaterDict(TypedDict):
    percent_agreement: Optional[float]
    fleiss_kappa: Optional[float]
    gwet_ac1: Optional[float]
    n_items_used: int

class GroupAlphaDict(TypedDict):
    pooled: AlphaDict
    within: list[tuple[str, AlphaDict]]
    n_missing: int

class AggregateDict(TypedDict):
    labels: Optional[list[Any]]
    label_index: bytearray
    posteriors: bytearray
    n_labels: int
    skills: list[Optional[float]]
    iterations: int
    converged: bool
    loss_history: list[float]

def table(
    items: list[Any],
    raters: list[Any],
    labels: list[Any],
    columns: Sequence[str],
    groups: Sequence[list[Any]] = ...,
    duplicates: str = "keep_all",
    domain: Optional[list[Any]] = None,
    ordered: bool = False,
) -> Table: ...
def table_arrow(
    data: Any,
    columns: Sequence[str],
    duplicates: str = "keep_all",
    domain: Optional[list[Any]] = None,
    ordered: bool = False,
) -> Table:
    """A Table from any object with ``__arrow_c_stream__`` or ``__arrow_c_array__``; ``columns``
    = item, rater, label, then group columns. Columns: utf8, large_utf8, utf8_view, integers,
    floats, booleans or dictionaries of those; null (and float NaN) = missing value."""

def alpha(table: Table, level: str) -> AlphaDict: ...
def alpha_arrow(
    data: Any,
    columns: Sequence[str],
    level: str,
    domain: Optional[list[Any]] = None,
    ordered: bool = False,
) -> AlphaDict:
    """α of Arrow data (``columns`` = item, rater, label) with every row counted
    (``duplicates="keep_all"``), from per-item label counts without building a Table; equal to
    ``alpha(table_arrow(data, columns), level)`` bit for bit, and failing as that does."""

def alpha_interval(
    table: Table, level: str, replicates: int = 1000, seed: int = 0, confidence: float = 0.95
) -> Optional[tuple[float, float, int]]: ...
def multi_rater(table: Table) -> MultiRaterDict: ...
def gwet_ac2(table: Table, weights: str) -> Optional[float]: ...
def cohen_kappa(table: Table, rater_a: Any, rater_b: Any) -> Optional[float]: ...
def group_alpha(table: Table, column: str, level: str) -> GroupAlphaDict: ...
def aggregate(table: Table, method: str, params: Optional[dict[str, Any]] = None) -> AggregateDict: ...
def disagreement(
    table: Table,
    column: str,
    level: str = "nominal",
    positive: Optional[str] = None,
    bootstrap: int = 1000,
    seed: int = 0,
    top: int = 20,
    min_group_raters: int = 5,
    bins: Optional[str] = None,
    text_column: Optional[str] = None,
) -> str:
    """The JSON text of ``arbiter disagreement``'s report.json on group column ``column``."""

# The embedded grader and the reward model (src/grader.rs, src/reward.rs). Samples are JSONL
# text in the CLI's sample shape, or an Arrow table (any object with ``__arrow_c_stream__`` or
# ``__arrow_c_array__``) in the CLI's Parquet samples schema (src/samples.rs); line N is the
# N-th sample in error messages.

class EmbeddedGrader:
    """The embedded offline grader, loaded once per process per (model_dir, heads)."""

    def __init__(
        self,
        policy: Optional[Policy] = None,
        model_dir: Optional[str | os.PathLike[str]] = None,
        heads: Optional[str | os.PathLike[str]] = None,
    ) -> None: ...
    @property
    def id(self) -> str: ...
    @property
    def propositions(self) -> list[str]: ...
    @property
    def preferred_batch_size(self) -> int: ...
    def grade_jsonl(self, jsonl_text: str, source: str = "samples") -> dict[str, list[Any]]:
        """Columns ``id``, one per proposition (``None`` where ungraded), ``flags``, ``line``."""
    def grade_arrow(self, data: Any, source: str = "samples") -> dict[str, list[Any]]:
        """:meth:`grade_jsonl` for an Arrow table of samples."""

class RewardModel:
    """Policy + fitted weights (JSON text) + grader; ``arbiter_reward::RewardModel``."""

    def __init__(
        self,
        policy: Policy,
        weights_json: str,
        grader: Optional[EmbeddedGrader] = None,
        source: str = "<weights>",
        cache_entries: int = 0,
    ) -> None: ...
    @property
    def grader_id(self) -> str: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def propositions(self) -> list[str]: ...
    def score_jsonl(self, jsonl_text: str, source: str = "samples") -> dict[str, list[Any]]:
        """Columns ``id``, ``reward``, ``rbr_reward``, ``base_reward``, ``class``,
        ``p_<class>``, one per proposition, ``error``, ``line`` (``None`` where unscored)."""
    def score_arrow(self, data: Any, source: str = "samples") -> dict[str, list[Any]]:
        """:meth:`score_jsonl` for an Arrow table of samples."""

def embedded_models_loaded() -> int:
    """How many embedded models this process has read from disk."""

def sample_ids(data: str | Any, source: str = "samples") -> list[int | str]:
    """Read and check samples (JSONL text or an Arrow table) as grading does, without
    grading: their ids, in order."""
