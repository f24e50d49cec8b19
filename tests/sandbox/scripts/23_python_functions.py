# functions: defaults, *args, **kwargs, closures, lambda, recursion, global and nonlocal


def greet(name, greeting="Hello"):
    return f"{greeting}, {name}!"


print(greet("Ada"))
print(greet("Alan", greeting="Hi"))
print(greet(greeting="Hey", name="Grace"))


def add_all(*args):
    total = 0
    for a in args:
        total += a
    return total


print(add_all(1, 2, 3), add_all())


def describe(**kwargs):
    for key, value in sorted(kwargs.items()):
        print(f"{key} = {value!r}")


describe(lr=0.01, optimizer="SGD", epochs=10)


def train(model_name, *layers, lr=0.1, **options):
    print(model_name, layers, lr, options)


train("net", 64, 32, 10, lr=0.01, momentum=0.9)
train("tiny")

sizes = [8, 4]
settings = {"lr": 0.5, "nesterov": True}
train("unpacked", *sizes, **settings)


def make_multiplier(factor):
    def multiply(x):
        return x * factor

    return multiply


double = make_multiplier(2)
triple = make_multiplier(3)
print(double(5), triple(5))


def make_counter():
    count = 0

    def increment():
        nonlocal count
        count += 1
        return count

    return increment


counter = make_counter()
counter()
counter()
print("counter:", counter())

calls = 0


def tracked():
    global calls
    calls += 1


tracked()
tracked()
print("calls:", calls)

square = lambda x: x**2
print(square(7))
print(list(map(lambda x: x * 10, [1, 2, 3])))
print((lambda a, b=2: a + b)(1))


def factorial(n):
    if n <= 1:
        return 1
    return n * factorial(n - 1)


print(factorial(10))


def fibonacci(n):
    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)


print([fibonacci(i) for i in range(10)])


def apply_twice(f, x):
    return f(f(x))


print(apply_twice(double, 3), apply_twice(square, 3))


def append_to(item, target=None):
    if target is None:
        target = []
    target.append(item)
    return target


print(append_to(1), append_to(2))


def min_max(values):
    return min(values), max(values)


low, high = min_max([3, 1, 4, 1, 5])
print(low, high)


def no_return():
    pass


print(no_return())


def keyword_only(a, *, scale=1.0):
    return a * scale


print(keyword_only(3, scale=0.5))
