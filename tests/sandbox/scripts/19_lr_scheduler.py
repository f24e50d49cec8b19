import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim import lr_scheduler

lr = 0.1
model = nn.Linear(10, 1)
x = torch.randn(16, 10)
y = torch.randn(16, 1)
criterion = nn.MSELoss()

optimizer = optim.Adam(model.parameters(), lr=lr)
lambda1 = lambda epoch: epoch / 10
scheduler = lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda1)

print(optimizer.state_dict()["param_groups"][0]["lr"])

for epoch in range(5):
    # loss.backward()
    optimizer.step()
    # validate(...)
    scheduler.step()
    print(optimizer.state_dict()["param_groups"][0]["lr"])

# StepLR: multiply the learning rate by gamma every step_size epochs
optimizer = optim.SGD(model.parameters(), lr=lr)
step_lr_scheduler = lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1)
for epoch in range(8):
    loss = criterion(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    step_lr_scheduler.step()
    print(
        f"epoch {epoch + 1}: loss = {loss.item():.4f}, lr = {step_lr_scheduler.get_last_lr()[0]:.5f}"
    )

# MultiplicativeLR and ExponentialLR
optimizer = optim.SGD(model.parameters(), lr=lr)
scheduler = lr_scheduler.MultiplicativeLR(optimizer, lr_lambda=lambda epoch: 0.95)
for epoch in range(3):
    optimizer.step()
    scheduler.step()
print(round(optimizer.param_groups[0]["lr"], 6))

optimizer = optim.SGD(model.parameters(), lr=lr)
scheduler = lr_scheduler.ExponentialLR(optimizer, gamma=0.5)
lrs = []
for epoch in range(4):
    optimizer.step()
    lrs.append(scheduler.get_last_lr()[0])
    scheduler.step()
print(lrs)
