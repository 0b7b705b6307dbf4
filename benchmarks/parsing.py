"""Parse latency on typical answers: ``python -m agentkit.benchmarks.parsing [repeats]``.

Parsing runs on every Response decision inside the policy step, so its cost should stay negligible next to
model time; this prints the median and p99 per answer kind as a Markdown table.
"""

from __future__ import annotations

import statistics
import sys
import time

from agentkit.parsing import parse_response

SIZE = (1316, 728)  # smart_resize(1080, 1920) as (width, height)
CASES: dict[str, tuple[str, str]] = {
    "qwen2_vl box": (
        "<|object_ref_start|>the red car<|object_ref_end|><|box_start|>(120,345),(456,789)<|box_end|>",
        "auto",
    ),
    "qwen2_5_vl json (2 boxes)": (
        '```json\n[\n\t{"bbox_2d": [135, 114, 1016, 672], "label": "person"},\n'
        '\t{"bbox_2d": [1020, 300, 1300, 720], "label": "bicycle"}\n]\n```',
        "qwen2_5_vl",
    ),
    "ui_tars click": (
        "Thought: I need to open the search bar first.\nAction: click(start_box='<|box_start|>(658,364)<|box_end|>')",
        "ui_tars",
    ),
    "computer_use tool_call": (
        '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [658, 364]}}\n'
        "</tool_call>",
        "qwen2_5_vl",
    ),
    "molmo points": ('<points x1="14.0" y1="73.2" x2="16.7" y2="63.6" alt="cups">cups</points>', "auto"),
    "plain sentence (180 chars)": ("A person walks up to the table and picks up the red bottle. " * 3, "auto"),
}


def main(repeats: int = 2000) -> None:
    print("| answer | median µs | p99 µs |\n|---|---|---|")
    for name, (text, fmt) in CASES.items():
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            parse_response(text, fmt, resized_size=SIZE)
            times.append(time.perf_counter() - t)
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"| {name} | {statistics.median(times) * 1e6:.0f} | {p99 * 1e6:.0f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
