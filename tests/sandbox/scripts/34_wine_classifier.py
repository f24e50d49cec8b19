import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

# the whole pipeline: Dataset -> DataLoader -> model -> loss -> optimizer


class WineDataset(Dataset):
    def __init__(self, transform=None):
        xy = np.loadtxt("./data/wine/wine.csv", delimiter=",", dtype=np.float32, skiprows=1)
        self.n_samples = xy.shape[0]
        self.x = xy[:, 1:]
        self.y = xy[:, 0].astype(np.int64) - 1  # classes 1, 2, 3 -> 0, 1, 2
        self.transform = transform

    def __getitem__(self, index):
        sample = self.x[index], self.y[index]
        if self.transform:
            sample = self.transform(sample)
        return sample

    def __len__(self):
        return self.n_samples


class Standardize:
    def __init__(self, mean, std):
        self.mean = mean
        self.std = std

    def __call__(self, sample):
        inputs, target = sample
        return (inputs - self.mean) / self.std, target


raw = WineDataset()
mean = raw.x.mean(axis=0)
std = raw.x.std(axis=0)
dataset = WineDataset(transform=Standardize(mean, std))
print(len(dataset), dataset[0][0].shape, dataset[0][1])

loader = DataLoader(dataset, batch_size=16, shuffle=True)


class WineNet(nn.Module):
    def __init__(self, n_features, n_hidden, n_classes):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_classes)
        )

    def forward(self, x):
        return self.net(x)


model = WineNet(13, 16, 3)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

num_epochs = 3
for epoch in range(num_epochs):
    epoch_loss = 0.0
    for inputs, labels in loader:
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item() * inputs.shape[0]
    print(f"epoch {epoch + 1}/{num_epochs}, loss = {epoch_loss / len(dataset):.4f}")

model.eval()
correct = 0
with torch.no_grad():
    for inputs, labels in DataLoader(dataset, batch_size=64):
        predicted = model(inputs).argmax(dim=1)
        correct += (predicted == labels).sum().item()
print(f"accuracy: {correct / len(dataset):.4f}")
