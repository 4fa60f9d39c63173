"""The ``damagesim`` command line."""
from __future__ import annotations

import signal
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path

import click
from tqdm import tqdm

from simulator.config.mix import parse_weights
from simulator.core.errors import ConfigError, DamagesimError, GenerationError
from simulator.core.paths import default_catalog, default_rig
from simulator.dataset import exports
from simulator.dataset.shards import export_shards
from simulator.dataset.validate import validate
from simulator.generate.parallel import RunOptions
from simulator.generate.run import generate as run
from simulator.generate.spec import GenerateSpec
from simulator.render.glenv import configure
from simulator.tools.designer import ReportSettings, rig_preview, rig_report
from simulator.tools.gallery import render_gallery, render_product_sheet, render_sensor_sheet
from simulator.tools.report import build_report
from simulator.tools.show import contact_sheet


def _fail(e: Exception) -> None:
    click.echo(f"damagesim: error: {e}", err=True)
    sys.exit(2)


def _warnings_as_lines() -> None:
    """Warnings (e.g. a rig with very many cameras) as one line each on stderr."""

    def show(message, category, filename, lineno, file=None, line=None):
        click.echo(f"damagesim: warning: {message}", err=True)

    warnings.showwarning = show


class _Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, Slurm, systemd, Kubernetes), handled like Ctrl-C."""


def _stop_on_sigterm() -> None:
    """Make SIGTERM stop a run as cleanly as Ctrl-C: raise in the main thread,
    once (a second SIGTERM during the clean-up is ignored)."""

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Terminated()

    signal.signal(signal.SIGTERM, handler)


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
@click.option("--variant-rate", type=float, default=None,
              help="Intact items rendered as a packaging design variant of their SKU (hard negative).")
@click.option("--variants-per-sku", type=int, default=None, help="Design variants per SKU.")
@click.option("--pairs/--no-pairs", default=None, help="Render pristine counterfactuals of damaged captures.")
@click.option("--reference-poses", type=int, default=None, help="Pristine reference captures per SKU.")
@click.option("--damage-where", type=click.Choice(["seen", "anywhere"]), default=None,
              help="seen: damage lands on surfaces some camera sees (catalog default); anywhere: the resting face too.")
@click.option("--randomization", type=click.Choice(["off", "booth", "wild", "closeup"]), default=None,
              help="Domain randomization preset (default: the catalog's randomization section).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--workers", default=1, show_default=True, type=int,
              help="Worker processes (each one GL context + one pybullet client); 1 = in this process.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local processes, or Ray (needs the 'scale' extra).")
@click.option("--address", default=None, help="Ray cluster address (default: start a local Ray with --workers CPUs).")
@click.option("--recycle", default=None, type=int,
              help="Replace each worker process after K captures (caps memory; default 200 for worker processes).")
@click.option("--resume", is_flag=True, help="Finish an interrupted run: keep complete captures, make the rest.")
@click.option("--shards", is_flag=True, help="Pack captures into WebDataset tar shards (OUT/shards) as they complete.")
@click.option("--shard-size", default=256, show_default=True, type=int, help="Captures per shard.")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop", show_default=True,
              help="A capture that fails: stop the run (after the captures in flight), or skip it and go on.")
def generate(n, seed, out, rig, catalog, items, only, gl, damage_rate, damages_per_item, categories,
             major_fraction, mess_rate, variant_rate, variants_per_sku, pairs, reference_poses, damage_where, randomization, quiet, workers, backend, address, recycle,
             resume, shards, shard_size, on_error) -> None:
    """Generate a labelled corpus into OUT (one folder per capture, COCO, dataset card).

    Exit status: 0 done (with --on-error skip, failed captures are listed in the
    card and here); 2 bad input or unwritable output; 3 a capture failed or a
    worker died (completed captures are kept: rerun with --resume)."""

    _stop_on_sigterm()
    _warnings_as_lines()
    try:
        gl_platform = configure(None if gl == "auto" else gl)

        damage = {"rate": damage_rate, "major_fraction": major_fraction, "mess_rate": mess_rate,
                  "variant_rate": variant_rate, "variants_per_sku": variants_per_sku,
                  "pairs": pairs, "reference_poses": reference_poses, "where": damage_where}
        if damages_per_item is not None:
            lo, _, hi = damages_per_item.partition("-")
            try:
                damage["per_item"] = [int(lo), int(hi or lo)]
            except ValueError:
                raise ConfigError(None, "--damages-per-item", damages_per_item, "expected MIN-MAX, e.g. 1-3") from None
        if categories is not None:
            damage["category_weights"] = parse_weights(categories)
        damage = {k: v for k, v in damage.items() if v is not None}
        spec = GenerateSpec(n=n, seed=seed, out=out, rig=rig, catalog=catalog, items_per_tray=items, damage=damage,
                            randomization=randomization)

        opts = RunOptions(workers=workers, backend=backend, address=address, recycle=recycle, resume=resume,
                          shards=shards, shard_size=shard_size, on_error=on_error, gl=gl_platform)
        total = 1 if only is not None else n
        with tqdm(total=total, unit="capture", desc="generate", disable=quiet, file=sys.stderr) as bar:
            card = run(spec, only=only, progress=bar.update, run=opts)
    except GenerationError as e:
        click.echo(f"damagesim: error: {e}", err=True)
        sys.exit(3)
    except KeyboardInterrupt as e:
        how = "SIGTERM" if isinstance(e, _Terminated) else "an interrupt"
        click.echo(f"\ndamagesim: stopped by {how}; completed captures in {out} are kept: "
                   f"rerun the same command with --resume to finish", err=True)
        sys.exit(143 if isinstance(e, _Terminated) else 130)
    except DamagesimError as e:
        _fail(e)
    c = card["counts"]
    click.echo(f"wrote {out}: {c['captures']} captures, {c['frames']} labelled frames, "
               f"{c['items']} items, card {Path(out) / 'dataset.json'}")
    if card.get("failed_captures"):
        click.echo(f"damagesim: warning: {len(card['failed_captures'])} capture(s) failed and were skipped: "
                   f"{', '.join(card['failed_captures'])} (see failed_captures in the card; --resume retries them)",
                   err=True)


@main.command()
@click.argument("capture_dir", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_png", default=None, type=click.Path(dir_okay=False),
              help="PNG path (default CAPTURE_DIR/contact_sheet.png, or renders/gallery.png with --gallery).")
@click.option("--gallery", is_flag=True, help="Instead: every damage op at minor and major on each product kind.")
@click.option("--sensors", is_flag=True, help="Instead: clean vs modelled RGB and depth for each device preset.")
@click.option("--products", "products", default=None, type=click.IntRange(1, 64),
              help="Instead: a sheet of N pristine SKUs of the catalog (renders/products.png).")
@click.option("--catalog", default=None, type=click.Path(dir_okay=False), help="Catalog for --gallery / --products.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for --gallery / --products.")
def show(capture_dir, out_png, gallery, sensors, products, catalog, seed) -> None:
    """Write a contact sheet of one capture (every camera's RGB, depth and label
    overlays), or with --gallery a sheet of every damage op on every product kind."""
    try:
        if sensors:

            configure()

            p = render_sensor_sheet(out_png or "renders/sensors.png", seed)
        elif products:

            configure()

            p = render_product_sheet(out_png or "renders/products.png", catalog, products, seed)
        elif gallery:

            configure()


            with tqdm(desc="gallery", unit="render", file=sys.stderr) as bar:
                p = render_gallery(out_png or "renders/gallery.png", catalog, seed, progress=bar.update)
        else:
            if capture_dir is None:
                raise click.UsageError("give CAPTURE_DIR, or --gallery")

            p = contact_sheet(capture_dir, out_png)
    except DamagesimError as e:
        _fail(e)
    click.echo(str(p))


# -- subcommands other packages register (entry points "damagesim.commands") ----
def _add_registered_commands(group: click.Group) -> None:
    """Mount every command registered under the ``damagesim.commands`` entry-point
    group (harness registers ``lift`` in pyproject.toml), so simulator never
    imports the packages built on top of it. A registered command whose package
    cannot be imported (a missing extra) is left out, with a one-line warning."""
    for ep in entry_points(group="damagesim.commands"):
        try:
            group.add_command(ep.load(), ep.name)
        except ImportError as e:
            print(f"damagesim: warning: command {ep.name!r} ({ep.value}) not available: {e}", file=sys.stderr)


_add_registered_commands(main)


@main.group("export")
def export() -> None:
    """Export an existing dataset: anomalib/MVTec folders, Kaputt-style query +
    reference sets, or WebDataset shards."""


def _call(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; a DamagesimError exits as documented."""
    try:
        return fn(*args, **kwargs)
    except DamagesimError as e:
        _fail(e)


@export.command("mvtec")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Export folder.")
@click.option("--by", type=click.Choice(["camera", "kind"]), default="camera", show_default=True,
              help="One MVTec category folder per RGB camera, or per product kind.")
@click.option("--test-fraction", default=0.2, show_default=True, type=float,
              help="Share of good images put in test/good (chosen by capture id, deterministic).")
def export_mvtec(dataset, out_dir, by, test_fraction) -> None:
    """anomalib/MVTec layout: <group>/train/good, <group>/test/<category>,
    <group>/ground_truth/<category>/*_mask.png."""
    summary = _call(exports.export_mvtec, dataset, out_dir, by=by, test_fraction=test_fraction)
    click.echo(f"wrote {out_dir}: {summary}")


@export.command("kaputt")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Export folder.")
@click.option("--split-by", type=click.Choice(["item", "capture"]), default="item", show_default=True,
              help="Hash the SKU (no item in two splits, as in Kaputt) or the capture id.")
@click.option("--fractions", default="0.7,0.1,0.2", show_default=True,
              help="train,validation,test shares (summing to 1).")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png", show_default=True,
              help="png copies the RGB unchanged; jpg re-encodes (quality 95) as Kaputt ships.")
@click.option("--query-mask", type=click.Choice(["item", "damage"]), default="item", show_default=True,
              help="query_mask column: the item mask (as Kaputt) or the damage mask (anomalib pixel metrics).")
def export_kaputt(dataset, out_dir, split_by, fractions, image_format, query_mask) -> None:
    """Kaputt layout as anomalib reads it: datasets/query-*.parquet and
    reference-*.parquet, query-{image,crop,mask}/ and reference-{image,crop,mask}/."""
    try:
        fr = tuple(float(x) for x in fractions.split(","))
    except ValueError:
        _fail(DamagesimError(f"export kaputt: --fractions must be three numbers like 0.7,0.1,0.2, got {fractions!r}"))
    summary = _call(exports.export_kaputt, dataset, out_dir, split_by=split_by, fractions=fr,
                    image_format=image_format, query_mask=query_mask)
    click.echo(f"wrote {out_dir}: {summary}")


@export.command("shards")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the shards.")
@click.option("--shard-size", default=256, show_default=True, type=int, help="Captures per shard.")
def export_shards_cmd(dataset, out_dir, shard_size) -> None:
    """Pack the capture folders of DATASET into WebDataset tar shards + index.json."""
    index = _call(export_shards, dataset, out_dir, shard_size)
    click.echo(f"wrote {out_dir}: {len(index['shards'])} shards, {index['samples']} samples")


@main.command("validate")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--quiet", is_flag=True, help="Print problems only.")
def validate_cmd(dataset, quiet) -> None:
    """Check a dataset end to end: files present and decodable, masks consistent,
    COCO loads and matches, counts match the card, shards readable. Exit status 1
    when a problem is found."""

    report = validate(dataset)
    for p in report.problems:
        click.echo(f"problem: {p}")
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    if not quiet:
        click.echo(f"checked {report.captures} captures, {report.files} files: "
                   f"{len(report.problems)} problem(s), {len(report.warnings)} warning(s)")
    sys.exit(1 if report.problems else 0)


@main.group()
def rig() -> None:
    """Booth designer: preview a rig and measure what it can see and detect."""


@rig.command("preview")
@click.argument("rig_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_png", default=None, type=click.Path(dir_okay=False),
              help="PNG path (default renders/rig_preview_<rig>.png).")
@click.option("--catalog", default=None, type=click.Path(dir_okay=False), help="Catalog of the reference item.")
@click.option("--sku", default=None, help="Reference item SKU (default: the catalog's first).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the item's resting pose.")
def rig_preview_cmd(rig_file, out_png, catalog, sku, seed) -> None:
    """One PNG: the booth from outside (tray, lights, labelled frustums) and every
    camera's view of a reference item."""

    try:
        configure()

        click.echo(str(rig_preview(rig_file, out_png, catalog, sku, seed)))
    except DamagesimError as e:
        _fail(e)


@rig.command("report")
@click.argument("rig_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--compare", default=None, type=click.Path(exists=True, dir_okay=False), help="A second rig, side by side.")
@click.option("--catalog", default=None, type=click.Path(dir_okay=False), help="Product catalog YAML (default: shipped).")
@click.option("--n", "n", default=24, show_default=True, type=int, help="Items for coverage, and damaged items.")
@click.option("--px-per-mm", default=0.5, show_default=True, type=float, help="Coverage resolution threshold X.")
@click.option("--min-pixels", default=25, show_default=True, type=int, help="RGB pixels P a damage needs to be detectable.")
@click.option("--min-depth-pixels", default=4, show_default=True, type=int,
              help="Depth pixels over 3 sigma a damage needs to be depth-detectable.")
@click.option("--seed", default=0, show_default=True, type=int, help="Report seed (items, damages, poses).")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder (default renders/rig_report/<rig>[_vs_<rig2>]).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def rig_report_cmd(rig_file, compare, catalog, n, px_per_mm, min_pixels, min_depth_pixels, seed, out, quiet) -> None:
    """Surface coverage at a resolution and damage detectability (JSON, markdown, PNG plots)."""

    try:
        configure()


        st = ReportSettings(n=n, seed=seed, px_per_mm=px_per_mm, min_pixels=min_pixels, min_depth_pixels=min_depth_pixels)
        st.validate()
        with tqdm(total=2 * n * (2 if compare else 1), unit="item", desc="rig report", disable=quiet, file=sys.stderr) as bar:
            d = rig_report(rig_file, compare, catalog, st, out, progress=bar.update)
    except DamagesimError as e:
        _fail(e)
    click.echo((d / "rig_report.md").read_text())
    click.echo(f"wrote {d}/rig_report.json, rig_report.md, coverage.png, detectability.png")


@main.command("report")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--limit", default=500, show_default=True, type=int, help="At most this many captures in the grid.")
@click.option("--per-page", default=12, show_default=True, type=int, help="Captures per page of the grid.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Folder for index.html and its images (default DATASET/report; give one for a read-only dataset).")
def report_cmd(dataset, limit, per_page, out_dir) -> None:
    """Write a static HTML report of a dataset to DATASET/report/index.html (or --out)."""
    try:

        click.echo(str(build_report(dataset, out_dir, limit=limit, per_page=per_page)))
    except DamagesimError as e:
        _fail(e)


if __name__ == "__main__":
    main()
