import torch

x = torch.randn(3, requires_grad=True)
print(x)

y = x + 2
# y was created by an operation, so it has a grad_fn
print(y)

z = y * y * 2
print(z)
z = z.mean()
print(z)

z.backward()  # dz/dx
print(x.grad)

# a vector output needs a vector for backward
x = torch.randn(3, requires_grad=True)
y = x * 2
for _ in range(10):
    y = y * 2
print(y)
v = torch.tensor([0.1, 1.0, 0.0001], dtype=torch.float32)
y.backward(v)
print(x.grad)

# three ways to stop tracking the history
a = torch.randn(2, 2)
print(a.requires_grad)
b = (a * 3) / (a - 1)
print(b.grad_fn)
a.requires_grad_(True)
print(a.requires_grad)
b = (a * a).sum()
print(b)
print(b.requires_grad)

c = a.detach()
print(c.requires_grad)

with torch.no_grad():
    d = a + 2
    print(d.requires_grad)

# gradients add up: empty them before the next step
weights = torch.ones(4, requires_grad=True)
for epoch in range(3):
    model_output = (weights * 3).sum()
    model_output.backward()
    print(weights.grad)
    weights.grad.zero_()

# the chain rule by hand: z = y*y, y = x + 2 -> dz/dx = 2 * (x + 2)
x = torch.tensor(1.0, requires_grad=True)
y = x + 2
z = y * y
z.backward()
print(x.grad, 2 * (1.0 + 2))
