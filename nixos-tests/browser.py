"""Drive deskd's viewer page in headless Chromium, for the NixOS VM tests' client machine.

Opens the page with a token, waits until it reports live video with decoded frames, then
optionally clicks the middle of the video and types text followed by Enter. Prints one JSON
line with what it saw; exits non-zero with the last state when the page never gets there.

The page's state comes from `window.__deskdViewer`: `status` and `framesDecoded()` (the
RTCPeerConnection's inbound video stats), with the video element's own decoded-frame count
as a fallback.
"""

import argparse
import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

STATE_JS = """
const done = arguments[arguments.length - 1];
(async () => {
  const v = window.__deskdViewer || {};
  let decoded = 0;
  try {
    decoded = typeof v.framesDecoded === 'function'
      ? await v.framesDecoded()
      : Number(v.framesDecoded || 0);
  } catch (e) {
    decoded = 0;
  }
  const video = document.querySelector('video');
  let videoFrames = 0;
  if (video && video.getVideoPlaybackQuality) {
    videoFrames = video.getVideoPlaybackQuality().totalVideoFrames || 0;
  }
  done({
    status: typeof v.status === 'string' ? v.status : null,
    framesDecoded: decoded || 0,
    videoFrames: videoFrames,
    videoSize: video ? [video.videoWidth, video.videoHeight] : null,
  });
})();
"""


def state_of(driver: webdriver.Chrome) -> dict:
    return driver.execute_async_script(STATE_JS) or {}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True, help="viewer URL including ?token=")
    p.add_argument("--chromium", required=True)
    p.add_argument("--chromedriver", required=True)
    p.add_argument("--timeout", type=float, default=180.0)
    p.add_argument("--click", action="store_true", help="click the middle of the video")
    p.add_argument("--type", default="", help="text typed after the click, then Enter")
    return p.parse_args()


def frames(state: dict) -> int:
    return max(int(state.get("framesDecoded") or 0), int(state.get("videoFrames") or 0))


def wait_live(driver: webdriver.Chrome, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        state = state_of(driver)
        if state.get("status") == "live" and frames(state) > 0:
            return state
        time.sleep(0.5)
    raise TimeoutError(f"viewer not live with decoded frames after {timeout}s: {json.dumps(state)}")


def main() -> int:
    args = parse_args()
    opts = webdriver.ChromeOptions()
    opts.binary_location = args.chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,800",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(args.chromedriver), options=opts)
    driver.set_script_timeout(30)
    try:
        driver.get(args.url)
        try:
            state = wait_live(driver, args.timeout)
        except TimeoutError as err:
            print(str(err), file=sys.stderr)
            return 1
        if args.click or args.type:
            video = driver.find_element(By.TAG_NAME, "video")
            ActionChains(driver).move_to_element(video).click().perform()
        if args.type:
            ActionChains(driver).send_keys(args.type).send_keys(Keys.ENTER).perform()
        state = state_of(driver) or state
        print(json.dumps(state))
        return 0
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
