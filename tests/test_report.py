"""Dataset report page: files and data, then the page in a real headless Chromium
(Debian packages ``chromium`` and ``chromium-driver``, driven through selenium)."""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simulator.tools.report import build_report, mask_overlay


@pytest.fixture(scope="module")
def dataset(gl, tmp_path_factory, small_rig_path):
    """3 captures on the small rig, every item damaged (a superficial mark or a
    spill, which show in the cameras), pristine pairs on."""
    from simulator.generate.run import generate
    from simulator.generate.spec import GenerateSpec

    out = tmp_path_factory.mktemp("ds") / "data"
    dmg = {"rate": 1.0, "per_item": [1, 1], "category_weights": {"superficial": 1.0, "spillage": 1.0},
           "pairs": True, "reference_poses": 0}
    generate(GenerateSpec(n=3, seed=4, out=str(out), rig=str(small_rig_path), damage=dmg))
    return out


def _page_data(page: Path) -> dict:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', page.read_text(), re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_mask_overlay_transparent_off_labels():
    lab = np.zeros((6, 8), np.uint8)
    lab[2:5, 3:6] = 2
    ov = mask_overlay(lab, alpha=100, halo=True)
    assert ov.shape == (6, 8, 4) and ov.dtype == np.uint8
    assert (ov[..., 3][lab > 0] >= 100).all()
    assert ov[0, 0, 3] == 0 and ov[3, 4, 3] == 100  # far background transparent, interior at alpha
    assert ov[1, 4, 3] > 0 and tuple(ov[1, 4, :3]) == (255, 255, 255)  # halo ring just outside


def test_report_files_and_data(dataset):
    page = build_report(dataset, per_page=2)
    assert page == dataset / "report" / "index.html"
    data = _page_data(page)
    card = json.loads((dataset / "dataset.json").read_text())
    assert len(data["captures"]) == card["counts"]["captures"] == 3
    n_img = 0
    for c in data["captures"]:
        assert c["pair"] and c["damages"]
        for name, v in c["cameras"].items():
            for key in ("rgb", "depth", "instance", "damage", "pristine_rgb", "pristine_depth"):
                if key in v:
                    p = (page.parent / v[key]).resolve()
                    assert p.is_file(), (c["id"], name, key, v[key])
                    assert not Path(v[key]).is_absolute()
                    n_img += 1
            # boxes are the COCO boxes of this capture's annotations
            anns = json.loads((dataset / "captures" / c["id"] / "annotations.json").read_text())[name]
            assert [b["bbox"] for b in v["boxes"]] == [[round(x, 1) for x in a["bbox"]] for a in anns]
            # the damage overlay is opaque exactly on damage pixels (plus the halo ring)
            if "damage" in v:
                ov = np.asarray(Image.open(page.parent / v["damage"]))
                dmg = np.asarray(Image.open(dataset / "captures" / c["id"] / name / "damage_category.png"))
                assert ov.shape[:2] == dmg.shape
                assert (ov[..., 3][dmg > 0] > 0).all()
                assert v["damage_pixels"] == int((dmg > 0).sum())
    assert n_img > 20
    assert any("damage" in v for c in data["captures"] for v in c["cameras"].values())
    html = page.read_text()
    for needle in ("items by product kind", "damages by category", "damages by severity", "<svg", 't-damage'):
        assert needle in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no network


def test_report_rejects_non_dataset(tmp_path):
    from click.testing import CliRunner

    from simulator.cli import main

    res = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "dataset.json" in res.output


# -- real browser ----------------------------------------------------------------------

def _chrome():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
              f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.fixture(scope="module")
def browser():
    d = _chrome()
    yield d
    d.quit()


def _shown(d, css):
    return d.execute_script(
        "return [...document.querySelectorAll(arguments[0])].filter(e => getComputedStyle(e).display !== 'none').length", css)


def test_report_in_headless_chromium(dataset, browser):
    from selenium.webdriver.common.by import By

    page = build_report(dataset, per_page=2)
    d = browser
    d.get(page.resolve().as_uri())
    d.execute_script("return document.readyState")
    # every image loads (relative file:// paths), visible or toggled off
    imgs = d.execute_script("return [...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    assert len(imgs) >= 8
    assert all(ok and w > 0 for _, ok, w in imgs), [i for i in imgs if not (i[1] and i[2] > 0)]
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    # paging: 3 captures, 2 per page
    assert d.find_element(By.ID, "pageinfo").text.startswith("page 1 of 2")
    assert len(d.find_elements(By.CSS_SELECTOR, ".capture")) == 2
    card = d.find_element(By.CSS_SELECTOR, ".capture")
    # damage masks on by default: toggling them off hides the overlays and changes the pixels
    damaged_cards = d.execute_script("return document.querySelectorAll('.capture img.ov-damage').length")
    assert damaged_cards > 0
    target = d.find_element(By.CSS_SELECTOR, "img.ov-damage").find_element(By.XPATH, "./ancestor::div[@class='view']")
    before = target.screenshot_as_png
    shown = _shown(d, "img.ov-damage")
    d.find_element(By.ID, "t-damage").click()
    assert shown > 0 and _shown(d, "img.ov-damage") == 0
    assert target.screenshot_as_png != before
    d.find_element(By.ID, "t-damage").click()
    assert _shown(d, "img.ov-damage") == shown
    # instance masks off by default: on shows them and changes the picture
    before = card.screenshot_as_png
    assert _shown(d, "img.ov-instance") == 0
    d.find_element(By.ID, "t-instance").click()
    assert _shown(d, "img.ov-instance") > 0
    assert card.screenshot_as_png != before
    # boxes, depth view, pairs
    d.find_element(By.ID, "t-boxes").click()
    assert _shown(d, "svg.boxes") > 0
    assert _shown(d, "img.base-depth") == 0
    d.find_element(By.ID, "t-depth").click()
    assert _shown(d, "img.base-depth") > 0 and _shown(d, "img.base-rgb") == 0
    assert _shown(d, ".side.pristine") > 0
    d.find_element(By.ID, "t-pairs").click()
    assert _shown(d, ".side.pristine") == 0
    # next page
    first = [e.get_attribute("data-id") for e in d.find_elements(By.CSS_SELECTOR, ".capture")]
    d.find_element(By.ID, "next").click()
    second = [e.get_attribute("data-id") for e in d.find_elements(By.CSS_SELECTOR, ".capture")]
    assert len(second) == 1 and not set(first) & set(second)
    imgs = d.execute_script("return [...document.images].map(i => [i.complete, i.naturalWidth])")
    assert all(ok and w > 0 for ok, w in imgs)
    assert [e for e in d.get_log("browser") if e["level"] == "SEVERE"] == []
