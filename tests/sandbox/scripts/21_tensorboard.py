import torch
import torch.nn as nn
from torch.utils.tensorboard import SummaryWriter

# default `log_dir` is "runs" - we'll be more specific here
writer = SummaryWriter("runs/logistic")

torch.manual_seed(42)
X = torch.randn(40, 2)
y = (X[:, 0] + X[:, 1] > 0).float().view(-1, 1)

model = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
criterion = nn.BCELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

n_logged = 0
running_loss = 0.0
for epoch in range(20):
    y_pred = model(X)
    loss = criterion(y_pred, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    running_loss += loss.item()
    acc = ((y_pred > 0.5).float() == y).float().mean().item()
    writer.add_scalar("training loss", loss.item(), epoch)
    writer.add_scalar("accuracy", acc, epoch)
    n_logged += 2
    if (epoch + 1) % 5 == 0:
        print(f"epoch {epoch + 1}: loss = {running_loss / 5:.4f}, accuracy = {acc:.4f}")
        running_loss = 0.0

writer.close()
print("logged", n_logged, "scalars")
