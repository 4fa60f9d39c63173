"""The ``damagesim`` command line."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import ConfigError, DamagesimError
from .paths import default_catalog, default_rig


def _fail(e: Exception) -> None:
    click.echo(f"damagesim: error: {e}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="damagesim")
def main() -> None:
    """damagesim: synthetic, exactly labelled RGB-D captures of damaged and intact
    products in a warehouse inspection booth."""


@main.command()
@click.option("--n", "n", default=10, show_default=True, type=int, help="Number of captures.")
@click.option("--seed", default=0, show_default=True, type=int, help="Run seed; capture i depends only on (seed, i).")
@click.option("--out", default="renders/default", show_default=True, type=click.Path(file_okay=False),
              help="Output dataset folder.")
@click.option("--rig", default=str(default_rig()), show_default=True, type=click.Path(dir_okay=False),
              help="Booth rig YAML.")
@click.option("--catalog", default=str(default_catalog()), show_default=True, type=click.Path(dir_okay=False),
              help="Product catalog YAML.")
@click.option("--items", "items", default=1, show_default=True, type=int, help="Items per tray.")
@click.option("--only", default=None, type=int, help="Regenerate capture I alone (then rewrite COCO and card).")
@click.option("--gl", type=click.Choice(["auto", "egl", "osmesa"]), default="auto", show_default=True,
              help="OpenGL platform for headless rendering.")
@click.option("--damage-rate", type=float, default=None, help="Probability that an item is damaged (catalog default).")
@click.option("--damages-per-item", default=None, help="MIN-MAX damages on a damaged item, e.g. 1-3.")
@click.option("--categories", default=None, help="Category weights, e.g. deformation=2,penetration=1 (others 0).")
@click.option("--major-fraction", type=float, default=None, help="Share of major damages.")
@click.option("--mess-rate", type=float, default=None, help="Intact items given an unrelated mess (hard negative).")
@click.option("--pairs/--no-pairs", default=None, help="Render pristine counterfactuals of damaged captures.")
@click.option("--reference-poses", type=int, default=None, help="Pristine reference captures per SKU.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(n, seed, out, rig, catalog, items, only, gl, damage_rate, damages_per_item, categories,
             major_fraction, mess_rate, pairs, reference_poses, quiet) -> None:
    """Generate a labelled corpus into OUT (one folder per capture, COCO, dataset card)."""
    from .glenv import configure

    try:
        configure(None if gl == "auto" else gl)
        from .corpus import parse_weights
        from .pipeline import GenerateSpec, generate as run

        damage = {"rate": damage_rate, "major_fraction": major_fraction, "mess_rate": mess_rate,
                  "pairs": pairs, "reference_poses": reference_poses}
        if damages_per_item is not None:
            lo, _, hi = damages_per_item.partition("-")
            try:
                damage["per_item"] = [int(lo), int(hi or lo)]
            except ValueError:
                raise ConfigError(None, "--damages-per-item", damages_per_item, "expected MIN-MAX, e.g. 1-3") from None
        if categories is not None:
            damage["category_weights"] = parse_weights(categories)
        damage = {k: v for k, v in damage.items() if v is not None}
        spec = GenerateSpec(n=n, seed=seed, out=out, rig=rig, catalog=catalog, items_per_tray=items, damage=damage)
        from tqdm import tqdm

        total = 1 if only is not None else n
        with tqdm(total=total, unit="capture", desc="generate", disable=quiet, file=sys.stderr) as bar:
            card = run(spec, only=only, progress=bar.update)
    except DamagesimError as e:
        _fail(e)
    c = card["counts"]
    click.echo(f"wrote {out}: {c['captures']} captures, {c['frames']} labelled frames, "
               f"{c['items']} items, card {Path(out) / 'dataset.json'}")


@main.command()
@click.argument("capture_dir", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_png", default=None, type=click.Path(dir_okay=False),
              help="PNG path (default CAPTURE_DIR/contact_sheet.png, or renders/gallery.png with --gallery).")
@click.option("--gallery", is_flag=True, help="Instead: every damage op at minor and major on each product kind.")
@click.option("--catalog", default=None, type=click.Path(dir_okay=False), help="Catalog for --gallery.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for --gallery.")
def show(capture_dir, out_png, gallery, catalog, seed) -> None:
    """Write a contact sheet of one capture (every camera's RGB, depth and label
    overlays), or with --gallery a sheet of every damage op on every product kind."""
    try:
        if gallery:
            from .glenv import configure

            configure()
            from tqdm import tqdm

            from .gallery import render_gallery

            with tqdm(desc="gallery", unit="render", file=sys.stderr) as bar:
                p = render_gallery(out_png or "renders/gallery.png", catalog, seed, progress=bar.update)
        else:
            if capture_dir is None:
                raise click.UsageError("give CAPTURE_DIR, or --gallery")
            from .show import contact_sheet

            p = contact_sheet(capture_dir, out_png)
    except DamagesimError as e:
        _fail(e)
    click.echo(str(p))


# -- subcommands defined in other modules (one add_command line each) ----------
from harness.cli import lift as _lift; main.add_command(_lift)  # noqa: E402,E702  (harness.cli imports torch only inside commands)


if __name__ == "__main__":
    main()
