import torch
from torch.utils.data import DataLoader, TensorDataset, random_split

X = torch.arange(20, dtype=torch.float32).view(10, 2)  # 10 samples, 2 features
y = torch.arange(10)
dataset = TensorDataset(X, y)
print(len(dataset))
print(dataset[3])

train_set, val_set = random_split(dataset, [8, 2])
print(len(train_set), len(val_set))
print(sorted(int(label) for _, label in val_set))

loader = DataLoader(train_set, batch_size=3, shuffle=True, drop_last=True)
for epoch in range(2):
    for features, labels in loader:
        print(epoch, features.shape, labels.tolist())

full_loader = DataLoader(train_set, batch_size=3)
print(len(loader), len(full_loader))
batches = [labels.shape[0] for _, labels in full_loader]
print(batches)

# a list of (features, label) pairs works as a dataset too
pairs = [(torch.tensor([float(i), float(-i)]), i % 2) for i in range(5)]
for features, labels in DataLoader(pairs, batch_size=2):
    print(features, labels)
