"""Seeded byte- and token-level mutation of seed files.

The operators are those that found failures by hand: flips, insertions, deletions,
truncations, duplicated spans, and splices of tokens that readers mishandle (numbers
beyond every integer width, NaN spellings, unicode, deep nesting)."""

from __future__ import annotations

import random
import re

# Tokens spliced into text: each stresses one reader path.
NASTY_TOKENS = [
    "0", "-1", "1", "2147483648", "4294967296", "9223372036854775807", "9223372036854775808",
    "18446744073709551616", "-9223372036854775809", "1e400", "-1e400", "1e-400", "nan", "inf", "-inf", "NaN",
    "0x10", "1_000", "1.", ".5", "1e", "true", "false", "''", "'", '"', "\\", "\\u0000", "é", "\u202e", "𝔁",
    "\ufeff", "\x00", "[]", "[[]]", "()", "(,)", "{", "}", "<", ">", "<scalar>", "<integer>", "<logical>",
    "tensor<?>", ";", ",", "=", "->", ":", "graph", "fragment", "version", "extension", "variable", "external",
    "constant", "shape", "label", "-", "!", "+", "*", "/", "^", "&&", "||", "?", "if", "else", "for", "in",
    "yield", "#", "//", "/*", "%", "@", "$", "loc(", "dense_resource<", "dense<", "f32", "i64", "tensor<2x?xf32>",
    "nnef.", "builtin.module", "\"nnef.relu\"", "{-#", "#-}", "%0", "^bb0", "i1",
]


def huge_tokens(rng: random.Random) -> str:
    """Tokens too big for a reader that trusts its input: many digits, deep nesting, long names."""
    choice = rng.randrange(7)
    if choice == 0:
        return "9" * rng.choice([19, 20, 310, 4301, 5000, 20_000])
    if choice == 1:
        depth = rng.choice([100, 1000, 10_000, 100_000])
        return "(" * depth + "1" + ")" * depth
    if choice == 2:
        depth = rng.choice([1000, 100_000])
        return "[" * depth + "1" + "]" * depth
    if choice == 3:
        return "x" * rng.choice([256, 10_000])
    if choice == 4:
        return "-" * rng.choice([1000, 100_000]) + "1"
    if choice == 5:
        return "1." + "0" * 5000 + "1e" + "9" * 400
    return "'" + "a" * rng.choice([10, 10_000]) + rng.choice(["", "'", "\\", "\n"])


def mutate_bytes(data: bytes, rng: random.Random, rounds: int | None = None) -> bytes:
    """A few random byte-level edits of `data`."""
    buf = bytearray(data)
    for _ in range(rounds or rng.choice([1, 1, 1, 2, 3, 8])):
        op = rng.randrange(8)
        n = len(buf)
        pos = rng.randrange(n + 1)
        if op == 0 and n:  # flip bits
            buf[min(pos, n - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:  # random bytes inserted
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.choice([1, 2, 4, 16])))
        elif op == 2 and n:  # a span deleted
            del buf[pos:pos + rng.choice([1, 4, 64, 1024])]
        elif op == 3:  # truncated
            del buf[pos:]
        elif op == 4 and n:  # a span duplicated elsewhere
            start = rng.randrange(n)
            span = buf[start:start + rng.choice([1, 8, 64, 512])]
            buf[pos:pos] = span
        elif op == 5 and n:  # an interesting integer overwritten in place (little-endian fields)
            value = rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1, 2**30, 2**20])
            width = rng.choice([1, 2, 4])
            buf[pos:pos + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        elif op == 6:
            buf[pos:pos] = rng.choice(NASTY_TOKENS).encode()
        elif op == 7 and n:  # a byte set to a boundary value
            buf[min(pos, n - 1)] = rng.choice([0, 0xFF, 0x7F, 0x80])
    return bytes(buf)


_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*|-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|'[^'\n]*'|\"[^\"\n]*\"|\S")


def mutate_text(text: str, rng: random.Random) -> str:
    """Token- and line-level edits: splices of tokens of the text itself or of nasty ones,
    lines duplicated (duplicate names), swapped (use before definition) or removed."""
    rounds = rng.choice([1, 1, 2, 3, 5])
    for _ in range(rounds):
        op = rng.randrange(7)
        if op <= 2:
            tokens = list(_TOKEN.finditer(text))
            if not tokens:
                text += rng.choice(NASTY_TOKENS)
                continue
            target = rng.choice(tokens)
            if op == 0:
                new = rng.choice(NASTY_TOKENS)
            elif op == 1:
                new = rng.choice(tokens).group()
            else:
                new = huge_tokens(rng)
            text = text[:target.start()] + new + text[target.end():]
        elif op == 3:
            lines = text.split("\n")
            i = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
            text = "\n".join(lines)
        elif op == 4:
            lines = text.split("\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif op == 5:
            lines = text.split("\n")
            del lines[rng.randrange(len(lines))]
            text = "\n".join(lines)
        else:
            raw = text.encode("utf-8", "surrogatepass")
            text = mutate_bytes(raw, rng, 1).decode("utf-8", "replace")
    return text
