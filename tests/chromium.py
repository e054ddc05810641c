"""A headless Chromium driven through its DevTools protocol over a pipe
(--remote-debugging-pipe: JSON messages ending in a NUL byte, commands on the
browser's fd 3, answers and events on its fd 4). No websocket, no port, no
Playwright: Debian's `chromium` and the standard library.

    with Chromium() as browser:
        browser.open('file:///tmp/page.html', 1400, 900)
        value = browser.evaluate('document.title')
        png = browser.screenshot()
"""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time

CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')

# Root needs --no-sandbox; on a closed network nothing may phone home.
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--no-first-run', '--no-default-browser-check', '--disable-extensions',
         '--hide-scrollbars', '--mute-audio', '--remote-debugging-pipe']


class Chromium:
    def __init__(self, timeout=60):
        self.timeout = timeout
        self.next_id = 0
        self.events = []
        self.session = None

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix='side-by-side-chromium.')
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # 10 and up, so that the redirections below never close what they made
        to_browser_r, from_browser_w = (self._high(fd) for fd in (to_browser_r, from_browser_w))
        # the browser reads fd 3 and writes fd 4
        self.proc = subprocess.Popen(
            ['bash', '-c', 'exec "$0" "$@" 3<&%d 4>&%d %d<&- %d>&-'
             % (to_browser_r, from_browser_w, to_browser_r, from_browser_w),
             CHROMIUM, *FLAGS, '--user-data-dir=' + self.profile, 'about:blank'],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b''
        return self

    @staticmethod
    def _high(fd):
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return high

    def __exit__(self, *exc):
        try:
            self.send('Browser.close', session=False, wait=False)
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.to_browser, self.from_browser):
            os.close(fd)
        self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read(self, deadline):
        while b'\0' not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError('chromium did not answer')
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError('chromium ended: %s' % self.proc.stderr.read().decode()[-2000:])
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b'\0', 1)
        return json.loads(message)

    def send(self, method, params=None, session=True, wait=True):
        self.next_id += 1
        message = {'id': self.next_id, 'method': method, 'params': params or {}}
        if session and self.session:
            message['sessionId'] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b'\0')
        if not wait:
            return None
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._read(deadline)
            if answer.get('id') == self.next_id:
                if 'error' in answer:
                    raise RuntimeError('%s: %s' % (method, answer['error']))
                return answer.get('result', {})
            self.events.append(answer)

    def wait_event(self, method):
        deadline = time.monotonic() + self.timeout
        for i, event in enumerate(self.events):
            if event.get('method') == method:
                return self.events.pop(i)
        while True:
            event = self._read(deadline)
            if event.get('method') == method:
                return event
            self.events.append(event)

    def open(self, url, width, height):
        """A page of width x height CSS pixels showing url, loaded."""
        target = self.send('Target.createTarget', {'url': 'about:blank'}, session=False)['targetId']
        self.session = self.send('Target.attachToTarget', {'targetId': target, 'flatten': True},
                                 session=False)['sessionId']
        self.send('Emulation.setDeviceMetricsOverride',
                  {'width': width, 'height': height, 'deviceScaleFactor': 1, 'mobile': False})
        self.send('Network.enable')
        self.send('Page.enable')
        self.send('Page.navigate', {'url': url})
        self.wait_event('Page.loadEventFired')

    def requests(self):
        """The URLs the page asked for so far."""
        return [e['params']['request']['url'] for e in self.events
                if e.get('method') == 'Network.requestWillBeSent']

    def evaluate(self, expression):
        result = self.send('Runtime.evaluate', {'expression': expression, 'returnByValue': True,
                                                'awaitPromise': True})
        if 'exceptionDetails' in result:
            raise RuntimeError('script failed: %s' % result['exceptionDetails'])
        return result['result'].get('value')

    def click(self, x, y):
        """A left click at viewport point (x, y), as a mouse gives it."""
        for kind in ('mousePressed', 'mouseReleased'):
            self.send('Input.dispatchMouseEvent', {'type': kind, 'x': x, 'y': y,
                                                   'button': 'left', 'clickCount': 1})

    def screenshot(self):
        """The viewport as PNG bytes."""
        return base64.b64decode(self.send('Page.captureScreenshot', {'format': 'png'})['data'])
