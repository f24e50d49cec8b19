name = "tensor"
value = 3.14159265
count = 42

print(f"{name!r} {name!s} {value:.2f} {value:10.3f}|")
print(f"{count:05d}|{count:>6}|{count:<6}|{count:^7}|")
print(f"{0.000123:e} {1234567.891:,.2f} {0.25:.1%} {255:x} {255:#b} {7:+d}")
print(f"{name:*^12}")
width = 8
precision = 3
print(f"{value:{width}.{precision}f}|")
print(f"{count=} {value = :.1f}")

print("-".join(["a", "b", "c"]), "a,b,,c".split(","), "  pad  ".strip())
print("Loss".upper(), "LOSS".lower(), "epoch".startswith("ep"), "model.pth".endswith(".pth"))
print("x + x".replace("x", "y"), "one two  three".split(), "abc".title())
print(str(1.0), repr("hi"), str([1, "a"]), f"{[1, 2]}", f"{ {'a': 1} }")

s = "pytorch"
print(s[::-1], s[2:5], len(s), s.find("t"), s.count("t"), s.index("o"))
print("ab" * 3, "a" < "b", "torch" in s)

print("no newline", end="!\n")
print(1, 2, 3, sep=", ")
print()

print(f"{'epoch':<8}{'loss':>8}")
for epoch, loss in enumerate([0.9, 0.45, 0.225], start=1):
    print(f"{epoch:<8}{loss:>8.3f}")

print(f"{True!r} {None} {2**10} {7 // 2} {7 % 3} {-7 // 2} {2**-1}")
print(f"{1e-5} {1e16} {0.1 + 0.2} {1 / 3} {100.0} {float('inf')}")
print(int("ff", 16), int("0b101", 2), float("1e-3"), str(-0.0), repr(1.5e300 * 10))
