import math


class Point:
    dims = 2  # a class attribute, shared by all points

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __repr__(self):
        return f"Point({self.x!r}, {self.y!r})"

    def __str__(self):
        return f"({self.x}, {self.y})"

    @property
    def norm(self):
        return math.sqrt(self.x**2 + self.y**2)

    @staticmethod
    def origin():
        return Point(0, 0)

    @classmethod
    def from_tuple(cls, pair):
        return cls(*pair)

    def add(self, other):
        return Point(self.x + other.x, self.y + other.y)


p = Point(3, 4)
print(p)
print(repr(p))
print([p, Point.origin()])
print(p.norm)
print(Point.from_tuple((1, 2)))
print(p.add(Point(1, 1)))
print(Point.dims, p.dims)
print(type(p))
print(isinstance(p, Point), isinstance(3, Point))
print(type(3), type(3.0), type("s"), type([]), type(None), type((1,)))
p.x = 6
p.y = 8
print(p, p.norm)


class Point3D(Point):
    dims = 3

    def __init__(self, x, y, z):
        super().__init__(x, y)
        self.z = z

    def __repr__(self):
        return f"Point3D({self.x}, {self.y}, {self.z})"

    @property
    def norm(self):
        return math.sqrt(self.x**2 + self.y**2 + self.z**2)


q = Point3D(1, 2, 2)
print(q, repr(q), q.norm, Point3D.dims)
print(type(q), isinstance(q, Point), isinstance(p, Point3D))
print(Point3D.from_tuple((2, 3, 6)).norm)


class Countdown:
    """Iterates n, n-1, ..., 1; also has a length, items and a call."""

    def __init__(self, n):
        self.n = n
        self.current = n

    def __iter__(self):
        self.current = self.n
        return self

    def __next__(self):
        if self.current <= 0:
            raise StopIteration
        self.current -= 1
        return self.current + 1

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if index >= self.n:
            raise IndexError("countdown index out of range")
        return self.n - index

    def __call__(self, extra):
        return self.n + extra


c = Countdown(3)
print(list(c), len(c), c[0], c(10))
for value in Countdown(2):
    print("item", value)
print(sum(Countdown(4)), max(Countdown(5)), sorted(Countdown(3)))
it = iter(Countdown(2))
print(next(it), next(it), next(it, "done"))


class Accumulator:
    total = 0

    def __init__(self):
        self.values = []

    def add(self, value):
        self.values.append(value)
        Accumulator.total += value
        return self


acc = Accumulator().add(1).add(2)
Accumulator().add(10)
print(acc.values, Accumulator.total)
