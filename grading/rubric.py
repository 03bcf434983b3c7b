"""The rubric file (grading/grading.toml, or --config FILE): points, tolerances, limits, the ban, overrides, and
the class's secret seed kept beside it.

    rubric = load_rubric(path, out)       # Rubric; rubric.seed is drawn once and kept (see secret_path)
    rubric.points["linear.forward"]       # 1.0
"""

import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from common import models
from common.errors import UsageError

DEFAULT = Path(__file__).with_name("grading.toml")
SECTIONS = ("points", "tolerances", "integration", "limits", "ban", "conventions", "late", "copies", "report",
            "handout", "students")


@dataclass
class Rubric:
    path: Path
    points: dict
    tolerances: dict
    integration: dict
    limits: dict
    banned: tuple
    allow: tuple
    students: dict = field(default_factory=dict)
    late: tuple = ()            # ((up to hours late, share kept), ...)
    copies: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    seed: int = 0
    secret_path: Path = None

    def judge_config(self):
        """What grading/code_checks.judge reads."""
        return {"tolerance": self.tolerances["relative_error"], "loss_tolerance": self.tolerances["loss"],
                "network_tolerance": self.tolerances["network"], "mlp_accuracy": self.integration["mlp_accuracy"],
                "cnn_loss_ratio": self.integration["cnn_loss_ratio"]}

    @property
    def code_points(self):
        return sum(self.points.values())

    @property
    def report_points(self):
        return self.report["figure_points"] * len(REPORT_ITEMS)

    @property
    def max_points(self):
        return self.code_points + self.report_points


MODELS = models.MODELS  # the report shows a figure of each
FIGURES = ("loss_graph", "confusion_matrix", "top3_images")
REPORT_ITEMS = tuple(f"{m}.{f}" for m in MODELS for f in FIGURES)


def secret_path(config, out):
    """Where the class's seed is kept: beside an instructor's own config, or in OUT for the kit's default."""
    return Path(out) / "secret.toml" if Path(config).resolve() == DEFAULT.resolve() else \
        Path(f"{config}.secret")


def read_toml(path, what):
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {what} {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{what} {path} is not valid TOML: {e}") from None


def load_rubric(config=DEFAULT, out="graded"):
    data = read_toml(config, "--config")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise UsageError(f"{config}: unknown section(s) {', '.join(unknown)}; the sections are {', '.join(SECTIONS)}")
    default = read_toml(DEFAULT, "the kit's rubric")
    merged = {section: {**default.get(section, {}), **data.get(section, {})} for section in SECTIONS}
    bad = [k for k, v in merged["points"].items() if not isinstance(v, (int, float)) or v < 0]
    if bad:
        raise UsageError(f"{config}: points must be numbers >= 0 ({', '.join(bad)})")
    unknown_parts = sorted(set(merged["points"]) - set(default["points"]))
    if unknown_parts:
        raise UsageError(f"{config}: no such part(s) {', '.join(unknown_parts)}; the parts are "
                         f"{', '.join(default['points'])}")
    path = secret_path(config, out)
    seed = read_toml(path, "the secret file").get("seed") if path.is_file() else None
    if seed is None:
        seed = secrets.randbits(63)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# The secret seed of this class's hidden tests: keep it, share it with nobody; a regrade "
                        f"reads it.\nseed = {seed}\n", encoding="utf-8")
    schedule = merged["late"].get("schedule", [])
    if not all(isinstance(r, list) and len(r) == 2 and all(isinstance(v, (int, float)) for v in r) and
               r[0] > 0 and 0 <= r[1] <= 1 for r in schedule):
        raise UsageError(f"{config}: [late] schedule must be [[hours, share kept], ...], hours > 0, 0 <= share <= 1")
    return Rubric(Path(config), {k: float(v) for k, v in merged["points"].items()}, merged["tolerances"],
                  merged["integration"], merged["limits"], tuple(merged["ban"].get("modules", ())),
                  tuple(merged["conventions"].get("allow", ())), data.get("students", {}),
                  tuple((float(h), float(f)) for h, f in schedule), merged["copies"], merged["report"], int(seed), path)
