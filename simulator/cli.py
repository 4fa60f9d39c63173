"""The ``damagesim`` command line."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import DamagesimError
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
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(n, seed, out, rig, catalog, items, only, gl, quiet) -> None:
    """Generate a labelled corpus into OUT (one folder per capture, COCO, dataset card)."""
    from .glenv import configure

    try:
        configure(None if gl == "auto" else gl)
        from .pipeline import GenerateSpec, generate as run

        spec = GenerateSpec(n=n, seed=seed, out=out, rig=rig, catalog=catalog, items_per_tray=items)
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
@click.argument("capture_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_png", default=None, type=click.Path(dir_okay=False),
              help="PNG path (default CAPTURE_DIR/contact_sheet.png).")
def show(capture_dir, out_png) -> None:
    """Write a contact sheet of one capture: every camera's RGB, depth and label overlays."""
    from .show import contact_sheet

    try:
        p = contact_sheet(capture_dir, out_png)
    except DamagesimError as e:
        _fail(e)
    click.echo(str(p))


if __name__ == "__main__":
    main()
