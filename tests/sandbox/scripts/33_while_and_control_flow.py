import math

import torch

# gradient descent until the loss is small enough
w = torch.tensor(5.0, requires_grad=True)
learning_rate = 0.1
step = 0
while True:
    loss = (w - 2) ** 2
    loss.backward()
    with torch.no_grad():
        w -= learning_rate * w.grad
    w.grad.zero_()
    step += 1
    if loss.item() < 1e-4:
        break
print(f"stopped after {step} steps, w = {w.item():.4f}")


def grade(accuracy):
    if accuracy >= 0.9:
        return "great"
    elif accuracy >= 0.7:
        return "good"
    elif accuracy >= 0.5:
        return "better than chance"
    else:
        return "keep training"


for acc in [0.95, 0.8, 0.55, 0.1]:
    print(acc, grade(acc))

# early stopping with patience
val_losses = [0.9, 0.7, 0.65, 0.66, 0.64, 0.67, 0.68, 0.69]
best = math.inf
patience = 2
bad_epochs = 0
for epoch, val_loss in enumerate(val_losses):
    if val_loss < best:
        best = val_loss
        bad_epochs = 0
        continue
    bad_epochs += 1
    print(f"epoch {epoch}: no improvement ({bad_epochs}/{patience})")
    if bad_epochs >= patience:
        print("early stop at epoch", epoch)
        break
print("best:", best)

n = 27
steps = 0
while n != 1:
    n = n // 2 if n % 2 == 0 else 3 * n + 1
    steps += 1
print("collatz steps:", steps)

print(math.sqrt(16), math.exp(1), math.log(100, 10), math.pi)
print(math.ceil(44.5), math.floor(-0.5), math.isclose(0.1 + 0.2, 0.3), math.inf > 1e308)
print(math.factorial(5), math.cos(0), math.tanh(0.5))

total = 0
i = 0
while i < 10:
    i += 1
    if i % 2:
        continue
    total += i
print(total)
