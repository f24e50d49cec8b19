import torch


def safe_divide(a, b):
    try:
        result = a / b
    except ZeroDivisionError as e:
        print("error:", e)
        return None
    else:
        print("ok")
        return result
    finally:
        print("done dividing", a, b)


print(safe_divide(6, 3))
print(safe_divide(1, 0))

try:
    [1, 2, 3][5]
except IndexError as err:
    print(type(err), err)

try:
    {"a": 1}["b"]
except KeyError as err:
    print("missing key", err)

try:
    int("abc")
except (TypeError, ValueError) as err:
    print(f"{type(err)}: {err}")

try:
    torch.ones(2, 3) @ torch.ones(2, 3)
except RuntimeError as err:
    print("torch says:", err)


def check_positive(x):
    if x <= 0:
        raise ValueError(f"expected a positive learning rate, got {x}")
    return x


try:
    check_positive(-1)
except ValueError as err:
    print("caught:", err)

try:
    raise TypeError("bad type")
except Exception as err:
    print(repr(err))

assert 1 + 1 == 2, "math works"
try:
    assert 2 < 1, "two is not less than one"
except AssertionError as err:
    print("assertion:", err)


def load(name):
    try:
        raise KeyError(name)
    except KeyError:
        print("re-raising")
        raise


try:
    load("weights")
except KeyError as err:
    print("outer got", err)

for attempt in range(3):
    try:
        if attempt < 2:
            raise RuntimeError(f"attempt {attempt} failed")
        print("attempt", attempt, "worked")
    except RuntimeError as err:
        print(err)
        continue
    finally:
        print("after attempt", attempt)

learning_rates = [0.1, 0.01, -0.5]
for lr in learning_rates:
    print(check_positive(lr))
