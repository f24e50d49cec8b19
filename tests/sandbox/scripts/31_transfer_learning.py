import torch
import torch.nn as nn
from torch.optim import lr_scheduler

# Transfer learning: keep the feature layers of a trained model, train only a new last layer


class Net(nn.Module):
    def __init__(self, num_classes):
        super(Net, self).__init__()
        self.features = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU())
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.features(x)
        return self.fc(x)


X = torch.randn(60, 4)
# first task: 3 classes
y_a = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
criterion = nn.CrossEntropyLoss()

pretrained = Net(num_classes=3)
optimizer = torch.optim.SGD(pretrained.parameters(), lr=0.1)
for epoch in range(30):
    loss = criterion(pretrained(X), y_a)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"task A loss: {loss.item():.4f}")
torch.save(pretrained.state_dict(), "pretrained.pth")

# second task: 2 classes, starting from the trained model
model = Net(num_classes=3)
model.load_state_dict(torch.load("pretrained.pth"))
print(model)

# freeze all the layers
for param in model.parameters():
    param.requires_grad = False

# a new last layer: its parameters require grad
num_ftrs = model.fc.in_features
model.fc = nn.Linear(num_ftrs, 2)
print(model.fc)

y_b = (X[:, 0] + X[:, 1] > 0).long()
optimizer = torch.optim.SGD(model.fc.parameters(), lr=0.5)
step_lr_scheduler = lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1)
for epoch in range(20):
    outputs = model(X)
    loss = criterion(outputs, y_b)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    step_lr_scheduler.step()
    if (epoch + 1) % 5 == 0:
        print(
            f"epoch {epoch + 1}: loss = {loss.item():.4f}, lr = {optimizer.param_groups[0]['lr']}"
        )

trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
print("trainable:", trainable, "frozen:", frozen)
print(torch.equal(model.features[0].weight, pretrained.features[0].weight))

model.eval()
with torch.no_grad():
    acc = (model(X).argmax(dim=1) == y_b).float().mean()
print(f"task B accuracy: {acc.item():.4f}")
