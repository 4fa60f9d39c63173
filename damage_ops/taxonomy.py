"""Damage taxonomy aligned with the Kaputt logistics benchmark (ICCV 2025).

Category ids are stable: they are written into label images and COCO files.
Id 0 always means "no damage".
"""
from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "deformation",
    "penetration",
    "deconstruction",
    "spillage",
    "missing_unit",
    "superficial",
)
#: category name -> label id written in ``damage_category`` images (1-based)
CATEGORY_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(CATEGORIES)}

SEVERITIES: tuple[str, ...] = ("minor", "major")


def category_id(name: str) -> int:
    """Label id of a damage category; raises ``ValueError`` naming the bad value."""
    try:
        return CATEGORY_IDS[name]
    except KeyError:
        raise ValueError(
            f"unknown damage category {name!r}; expected one of {list(CATEGORIES)}"
        ) from None


#: Global vocabulary of part names. Part ids in ``part`` label images index this
#: tuple (0 = background / not an item). Products name their parts from it.
PART_NAMES: tuple[str, ...] = (
    "background",
    "body",        # carton walls, bottle body, pouch/mailer envelope, can
    "flap",        # carton top flaps
    "tape",        # sealing tape
    "label",       # paper label / printed sleeve
    "cap",         # bottle cap
    "card",        # blister backing card
    "blister",     # clear thermoformed blister
    "unit",        # a unit inside a set (razor, can in a multipack)
    "film",        # shrink film, poly film
    "seal",        # pouch heat seal / mailer seal strip
    "valve",       # coffee-bag degassing valve
    "contents",    # contents that came out of a container
    "debris",      # spilled liquid / powder, puddles on the tray
)
PART_IDS: dict[str, int] = {name: i for i, name in enumerate(PART_NAMES)}


def part_id(name: str) -> int:
    """Global label id of a part name; raises ``ValueError`` naming the bad value."""
    try:
        return PART_IDS[name]
    except KeyError:
        raise ValueError(
            f"unknown part name {name!r}; expected one of {list(PART_NAMES[1:])}"
        ) from None
