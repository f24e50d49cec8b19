# comprehensions, generator expressions and the builtins that go with them

squares = [x * x for x in range(10)]
evens = [x for x in squares if x % 2 == 0]
pairs = [(i, j) for i in range(3) for j in range(i)]
print(squares, evens, pairs, sep="\n")

word_lengths = {w: len(w) for w in ["tensor", "grad", "loss"]}
print(word_lengths)
remainders = {x % 3 for x in range(10)}
print(remainders, type(remainders))
matrix = [[i * 3 + j for j in range(3)] for i in range(2)]
print(matrix)

total = sum(x for x in range(101))
print(total)
print(any(x > 80 for x in squares), all(x >= 0 for x in squares))

scores = {"alice": 0.91, "bob": 0.78, "carol": 0.85}
ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
print(ranked)
print(max(scores, key=scores.get), min(scores.values()))
print(min(["pytorch", "np", "sklearn"], key=len), max([3, -7, 5], key=abs))

names = ["b", "a", "c"]
for i, (name, score) in enumerate(zip(names, [3, 1, 2]), start=1):
    print(i, name, score)

print(list(filter(lambda n: n % 3 == 0, range(10))))
print(list(map(str, [1, 2, 3])))
print(list(zip("abc", range(3))))
print(dict(zip(["w", "b"], [0.5, -1])))

first, *rest = [1, 2, 3, 4]
*init, last = (5, 6, 7)
a, (b, c) = 1, (2, 3)
print(first, rest, init, last, a, b, c)
merged = [*rest, *init]
config = {**{"lr": 0.1}, "epochs": 5}
print(merged, config)

x = 5
print(1 < x < 10, 1 < x > 6, x == 5 != 4)
print(x is None, rest is not None, 3 in rest, 9 not in rest)

print(list(reversed(range(4))), sorted("pytorch"), sorted([3, 1, 2], reverse=True))
transpose = [list(row) for row in zip(*matrix)]
print(transpose)

it = iter([10, 20, 30])
print(next(it), next(it), list(it))

nums = [5, 3, 8]
nums.sort()
nums.append(1)
nums.extend([9, 9])
print(nums, nums.index(8), nums.count(9))
last_num = nums.pop()
print(last_num, nums)
print(nums[1:3], nums[::-1], nums[-2:])

d = {}
d.setdefault("x", []).append(1)
d["y"] = 2
d.update({"z": 3})
print(d, d.get("w", "missing"), list(d.keys()), list(d.values()))
for key, value in d.items():
    print(key, "->", value)
del d["x"]
print(len(d), "x" in d)

print(tuple(range(3)), dict(a=1, b=2), set([1, 1, 2]), list("abc"))
print(bool(0), bool([0]), int("42"), int(3.9), float("0.5"), str(3.0))
print(round(3.14159, 2), round(2.5), abs(-3), sum([0.1] * 3))
t = (1, 2, 3)
print(t + (4,), t * 2, len(t), t[-1])
s = {1, 2, 3}
print(s | {4}, s & {2, 3, 9}, s - {1})
