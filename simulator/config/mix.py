"""Corpus controls: how much damage, of which kinds, how severe; pristine pairs,
reference galleries and hard negatives. Set in a catalog's ``damage:`` section,
overridable from the command line; the resolved values go into the dataset card."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from damage_ops.taxonomy import CATEGORIES
from simulator.core.errors import ConfigError
from simulator.core.yamlio import check_keys, integer, number

_KEYS = {"rate", "per_item", "category_weights", "major_fraction", "mess_rate", "variant_rate", "variants_per_sku",
         "pairs", "reference_poses", "where"}
#: where damage may land: ``seen`` (on surfaces some camera of the rig can see:
#: the item is settled first and damage sites are drawn among its faces that face
#: a camera and do not touch the tray) or ``anywhere`` (any exposed face, the
#: resting face included; the item is damaged first, then settled)
WHERE = ("seen", "anywhere")
#: most design variants a SKU may have
MAX_VARIANTS = 64


@dataclass(frozen=True)
class DamageMix:
    """rate: probability that an item is damaged (a synthetic corpus oversamples
        damage: real booths see < 1 in 1,000);
    per_item: (min, max) damages on a damaged item;
    category_weights: Kaputt category -> relative weight (0 = never);
    major_fraction: probability that a damage is major rather than minor;
    mess_rate: probability that an intact item gets an unrelated mess (a puddle
        or powder heap that is not its damage) beside it, a hard negative;
    variant_rate: probability that an intact item (with artwork) is rendered as a
        packaging design variant of its SKU (same item, other printed design; the
        reference gallery keeps the canonical design), a hard negative;
    variants_per_sku: how many design variants each SKU has (variant k in
        1..variants_per_sku, drawn uniformly; each a fixed design for the run);
    pairs: render a pristine counterfactual of every damaged capture;
    reference_poses: pristine reference captures per SKU in the dataset (0 = none);
    where: ``seen`` or ``anywhere`` (see :data:`WHERE`)."""

    rate: float = 0.5
    per_item: tuple[int, int] = (1, 2)
    category_weights: dict[str, float] = field(default_factory=lambda: {c: 1.0 for c in CATEGORIES})
    major_fraction: float = 0.4
    mess_rate: float = 0.1
    variant_rate: float = 0.1
    variants_per_sku: int = 3
    pairs: bool = True
    reference_poses: int = 2
    where: str = "seen"

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``per_item`` as a list), for the dataset card."""
        d = asdict(self)
        d["per_item"] = list(self.per_item)
        return d

    def with_overrides(self, **kw) -> "DamageMix":
        """A copy with the given fields replaced (None values are ignored: flags not
        given), validated; a bad value raises ConfigError named by its command-line
        flag (:data:`FLAGS`)."""
        kw = {k: v for k, v in kw.items() if v is not None}
        if "per_item" in kw:
            kw["per_item"] = tuple(kw["per_item"])
        out = replace(self, **kw)
        validate(out, None, "command line", flags=FLAGS)
        return out


#: the generate flag that overrides each field (errors in overrides name the flag)
FLAGS = {"rate": "--damage-rate", "per_item": "--damages-per-item", "category_weights": "--categories",
         "major_fraction": "--major-fraction", "mess_rate": "--mess-rate", "variant_rate": "--variant-rate",
         "variants_per_sku": "--variants-per-sku", "pairs": "--pairs", "reference_poses": "--reference-poses",
         "where": "--damage-where"}


def validate(mix: DamageMix, file, where: str, flags: dict[str, str] | None = None) -> DamageMix:
    """Check every field; a bad one raises ConfigError keyed ``where.field`` (or
    by its command-line flag, ``flags[field]``)."""
    def key(name: str, sub: str = "") -> str:
        if flags:
            return flags[name] + (f" {sub}" if sub else "")
        return f"{where}.{name}" + (f".{sub}" if sub else "")

    number(file, key("rate"), mix.rate, 0.0, 1.0)
    lo, hi = mix.per_item
    if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi <= 8):
        raise ConfigError(file, key("per_item"), list(mix.per_item), "must be [min, max] integers with 1 <= min <= max <= 8")
    for c, w in mix.category_weights.items():
        if c not in CATEGORIES:
            raise ConfigError(file, key("category_weights", c), w, f"unknown category; expected one of {list(CATEGORIES)}")
        number(file, key("category_weights", c), w, 0.0, 1e6)
    if mix.rate > 0 and not any(w > 0 for w in mix.category_weights.values()):
        raise ConfigError(file, key("category_weights"), mix.category_weights, "all weights are 0 but rate > 0")
    number(file, key("major_fraction"), mix.major_fraction, 0.0, 1.0)
    number(file, key("mess_rate"), mix.mess_rate, 0.0, 1.0)
    number(file, key("variant_rate"), mix.variant_rate, 0.0, 1.0)
    v = mix.variants_per_sku
    integer(file, key("variants_per_sku"), v, 1, MAX_VARIANTS)
    if not isinstance(mix.pairs, bool):
        raise ConfigError(file, key("pairs"), mix.pairs, "must be true or false")
    integer(file, key("reference_poses"), mix.reference_poses, 0, 32)
    if mix.where not in WHERE:
        raise ConfigError(file, key("where"), mix.where, f"must be one of {list(WHERE)}")
    return mix


def parse_damage(file, d: Any) -> DamageMix:
    """The ``damage:`` section of a catalog (missing keys keep the defaults)."""
    if d is None:
        return DamageMix()
    check_keys(file, "damage", d, _KEYS)
    kw = dict(d)
    if "per_item" in kw:
        v = kw["per_item"]
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v, v]
        if not isinstance(v, list) or len(v) != 2:
            raise ConfigError(file, "damage.per_item", v, "must be an integer or [min, max]")
        kw["per_item"] = tuple(v)
    if "category_weights" in kw:
        cw = kw["category_weights"]
        if not isinstance(cw, dict):
            raise ConfigError(file, "damage.category_weights", cw, "must be a mapping category -> weight")
        kw["category_weights"] = {**{c: 0.0 for c in CATEGORIES}, **cw}  # left out = never
    return validate(DamageMix(**kw), file, "damage")


def parse_weights(text: str) -> dict[str, float]:
    """``deformation=2,penetration=1`` (categories left out get 0)."""
    out = {c: 0.0 for c in CATEGORIES}
    for item in text.split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ConfigError(None, "--categories", text, "expected name=weight pairs separated by commas")
        k, v = item.split("=", 1)
        k = k.strip()
        if k not in CATEGORIES:
            raise ConfigError(None, "--categories", k, f"unknown category; expected one of {list(CATEGORIES)}")
        try:
            out[k] = float(v)
        except ValueError:
            raise ConfigError(None, "--categories", v, f"weight of {k} is not a number") from None
    return out
