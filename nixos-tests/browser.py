"""Drive deskd's viewer page in headless Chromium, for the NixOS VM tests' client machine.

Opens the page with a token, waits until it reports live video with decoded frames, then
optionally clicks the middle of the video and types text followed by Enter. Prints one JSON
line with what it saw; exits non-zero with the last state when the page never gets there.

The page queues input until neko makes it the host, and sends it over the WebRTC data
channel, so quitting the browser right after typing could lose the keys. With
`--expect control` it waits until the page is the host and then for two pongs of the page's
data-channel ping (sent every 5 s): the second one was sent after the keys on the same
ordered channel, so neko has them. With `--expect view` it waits until the page reports that
control was refused (and it is not the host).

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
    isHost: v.isHost === true,
    controlRefused: v.controlRefused === true,
    rttMs: typeof v.rttMs === 'number' ? v.rttMs : null,
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
    p.add_argument(
        "--expect",
        choices=("control", "view"),
        help="after the input: wait until it reached neko (control) or control was refused (view)",
    )
    return p.parse_args()


def frames(state: dict) -> int:
    return max(int(state.get("framesDecoded") or 0), int(state.get("videoFrames") or 0))


def wait_for(driver: webdriver.Chrome, what: str, done, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        state = state_of(driver)
        if done(state):
            return state
        time.sleep(0.25)
    raise TimeoutError(f"viewer: {what} not seen after {timeout}s: {json.dumps(state)}")


def wait_live(driver: webdriver.Chrome, timeout: float) -> dict:
    return wait_for(
        driver,
        "live video with decoded frames",
        lambda s: s.get("status") == "live" and frames(s) > 0,
        timeout,
    )


def wait_input_delivered(driver: webdriver.Chrome, timeout: float) -> dict:
    """The page is the host (its queued input flushed), then two fresh pongs (see above)."""
    wait_for(driver, "control of the desktop (isHost)", lambda s: s.get("isHost"), timeout)
    state: dict = {}
    for n in (1, 2):
        driver.execute_script("window.__deskdViewer.rttMs = null;")
        state = wait_for(
            driver, f"data-channel pong {n} after the input", lambda s: s.get("rttMs") is not None, timeout
        )
    return state


def main() -> int:
    args = parse_args()
    opts = webdriver.ChromeOptions()
    opts.binary_location = args.chromium
    # As the repository's own Chromium tests (supervisor/tests/viewer_browser.rs): plain IP
    # host candidates instead of mDNS names neko would have to resolve, and no throttling of
    # the page's timers (its data-channel ping) in a window nobody looks at.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
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
        try:
            if args.expect == "control":
                state = wait_input_delivered(driver, args.timeout)
            elif args.expect == "view":
                state = wait_for(
                    driver,
                    "control refused (view only)",
                    lambda s: s.get("controlRefused") and not s.get("isHost"),
                    args.timeout,
                )
            else:
                state = state_of(driver) or state
        except TimeoutError as err:
            print(str(err), file=sys.stderr)
            return 1
        print(json.dumps(state))
        return 0
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
