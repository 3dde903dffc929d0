"""The site in a real browser: Debian's Chromium driven by Playwright against a live server."""
