"""Open a floodx Snakemake report in headless Chromium as a reader would, check it, take screenshots.

    make report                                   # writes results/report.html
    pip install -c constraints.txt -e '.[browser]'   # selenium; Debian: apt-get install chromium chromium-driver
    python tools/report_screenshots.py results/report.html --out docs/images

It clicks what a reader clicks: the landing page's "Table 2" link, then the eye icon, and checks
that the page shown is a table with a row per method (not a download). It saves
`report-landing.png`, `report-table2.png` (and `-wide`, the menu closed) and `report-reading.png` and exits 1 with the reason if a
check fails. A browser is not needed by the pipeline or its tests: this is the documented check of
what the report looks like (README, "The report").
"""

import argparse
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

# Chromium as root, with nothing reaching for the network (this machine has none).
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser(chromium, chromedriver, width, height):
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--window-size={width},{height}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def open_result(driver, link_text, wait):
    """From the landing page: the link to a result, then its eye icon; returns the shown page's text."""
    wait.until(expected_conditions.element_to_be_clickable((By.LINK_TEXT, link_text))).click()
    wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "a[iconname=eye]"))).click()
    frame = wait.until(expected_conditions.presence_of_element_located((By.TAG_NAME, "iframe")))
    driver.switch_to.frame(frame)
    text = driver.find_element(By.TAG_NAME, "body").text
    rows = len(driver.find_elements(By.CSS_SELECTOR, "table tbody tr"))
    driver.switch_to.default_content()
    return text, rows


def check_report(report, out_dir, chromium="/usr/bin/chromium", chromedriver="/usr/bin/chromedriver",
                 width=1920, height=1080):
    """Screenshots of the landing page, Table 2 and its reading; a list of failed checks (empty: all good)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    url = Path(report).resolve().as_uri()
    failures = []
    driver = browser(chromium, chromedriver, width, height)
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(url)
        wait.until(expected_conditions.presence_of_element_located((By.LINK_TEXT, "Table 2")))
        landing = driver.find_element(By.TAG_NAME, "body").text
        for phrase in ("Start here", "What this run was"):
            if phrase not in landing:
                failures.append(f"landing page: no '{phrase}'")
        time.sleep(1)  # the menu fades in
        driver.save_screenshot(str(out_dir / "report-landing.png"))

        text, rows = open_result(driver, "Table 2", wait)
        time.sleep(0.5)  # let the frame paint before the screenshot
        driver.save_screenshot(str(out_dir / "report-table2.png"))
        if rows < 2 or "Aua%" not in text:
            failures.append(f"Table 2: {rows} table row(s) shown, 'Aua%' {'present' if 'Aua%' in text else 'absent'}")
        driver.execute_script("app.setView({hideNavbar: true})")  # what the menu's close button does
        time.sleep(0.5)
        driver.save_screenshot(str(out_dir / "report-table2-wide.png"))

        driver.get(url)
        wait.until(expected_conditions.presence_of_element_located((By.LINK_TEXT, "What Table 2 shows")))
        text, _ = open_result(driver, "What Table 2 shows", wait)
        time.sleep(0.5)
        driver.save_screenshot(str(out_dir / "report-reading.png"))
        if "smallest difference" not in text:
            failures.append("reading: no 'smallest difference' sentence shown")
    finally:
        driver.quit()
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", help="the report.html that `make report` wrote")
    parser.add_argument("--out", default="docs/images", help="folder for the screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args(argv)
    failures = check_report(args.report, args.out, args.chromium, args.chromedriver)
    for failure in failures:
        print(f"report check failed: {failure}", file=sys.stderr)
    if not failures:
        print(f"report check passed: landing page, Table 2 and its reading shown as tables/text; "
              f"screenshots in {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
