"""An independent parser of CDS ReadMe byte-by-byte descriptions, for the tests."""

import re

__all__ = ["byte_description", "slice_data"]

# One line of a byte-by-byte description (not the package's parser).
_BYTES = re.compile(r"^\s*(?:(\d+)\s*-)?\s*(\d+)\s+([AIFE])(\d+)(?:\.(\d+))?\s+(\S+)\s+(\S+)")


def byte_description(readme):
    """[(label, start, end, kind, unit)] from the ReadMe text."""
    lines = readme.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("Byte-by-byte"))
    assert set(lines[i + 1]) == {"-"} and set(lines[i + 3]) == {"-"}
    assert lines[i + 2].split()[:5] == ["Bytes", "Format", "Units", "Label", "Explanations"]
    out = []
    for line in lines[i + 4:]:
        if set(line) == {"-"}:
            break
        m = _BYTES.match(line)
        if m:
            start, end = int(m.group(1) or m.group(2)), int(m.group(2))
            assert end - start + 1 == int(m.group(4)), line
            out.append((m.group(7), start, end, m.group(3), m.group(6)))
    return out


def slice_data(data_text, ranges):
    """Column label -> list of stripped strings cut with the byte ranges."""
    rows = data_text.splitlines()
    return {label: [row[s - 1:e].strip() for row in rows] for label, s, e, _, _ in ranges}
