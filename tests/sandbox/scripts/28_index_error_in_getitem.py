import torch
from torch.utils.data import DataLoader, Dataset


class SquaresDataset(Dataset):
    def __init__(self, n):
        self.x = torch.arange(n, dtype=torch.float32)
        self.y = self.x**2

    def __getitem__(self, index):
        return self.x[index], self.y[index]

    def __len__(self):
        return len(self.x)


dataset = SquaresDataset(5)
print(len(dataset))
print(dataset[2])

loader = DataLoader(dataset, batch_size=2)
for xb, yb in loader:
    print(xb, yb)

# off by one: range goes one past the end
for i in range(len(dataset) + 1):
    x, y = dataset[i]
    print(f"{x.item():.1f} -> {y.item():.1f}")
