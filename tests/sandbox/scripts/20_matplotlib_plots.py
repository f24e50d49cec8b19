import torch
import torch.nn as nn
import numpy as np
import matplotlib.pyplot as plt

# the activation functions, drawn
x = torch.linspace(-5, 5, 21)
plt.figure(figsize=(6, 4))
plt.plot(x.numpy(), torch.sigmoid(x).numpy(), label="sigmoid")
plt.plot(x.numpy(), torch.tanh(x).numpy(), label="tanh")
plt.plot(x.numpy(), torch.relu(x).numpy(), "--", label="relu")
plt.xlabel("x")
plt.ylabel("activation(x)")
plt.title("Activation functions")
plt.legend()
plt.grid(True)
plt.show()

# a loss curve
X = torch.linspace(0, 1, 20).view(-1, 1)
Y = 3 * X + 1
model = nn.Linear(1, 1)
criterion = nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
losses = []
for epoch in range(30):
    loss = criterion(model(X), Y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())

print(f"first loss {losses[0]:.4f}, last loss {losses[-1]:.4f}")
print(len(losses))

plt.plot(range(1, len(losses) + 1), losses)
plt.xlabel("epoch")
plt.ylabel("loss")
plt.show()

# data and fit
predicted = model(X).detach().numpy()
plt.scatter(X.numpy(), Y.numpy(), color="red", label="data")
plt.plot(X.numpy(), predicted, color="blue", label="fit")
plt.legend()
plt.show()
w, b = model.weight.item(), model.bias.item()
print(f"w = {w:.3f}, b = {b:.3f}")
print(np.round(predicted[:3, 0], 3))
