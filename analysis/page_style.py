"""The style every page of the project shares (the report, the ladder): one place, no import of what draws them.

Readable from a phone to a 1280-px window without scrolling sideways: images and tables never wider than the text
column, long cells (a config's sampled values, a path) wrap.
"""

from __future__ import annotations

PAGE_STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.35}"
              "table{border-collapse:collapse;margin:1em 0;max-width:100%}"
              "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;overflow-wrap:break-word}"
              "figure{margin:0.5em 0 2em 0}img{display:block;max-width:100%;height:auto}"
              "figcaption{font-size:0.92em;color:#333;margin-top:0.4em;max-width:100%}"
              ".warn{background:#fff3cd;border:1px solid #e0c060;padding:0.5em 1em}")
