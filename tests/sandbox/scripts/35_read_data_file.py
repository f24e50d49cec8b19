import numpy as np
import torch

# look at the file before writing a Dataset for it
with open("./data/wine/wine.csv") as f:
    lines = f.read().splitlines()
print(lines[0])
print(len(lines) - 1, "samples")

header = lines[0].split(",")
print(len(header), header[:3])
rows = [[float(v) for v in line.split(",")] for line in lines[1:4]]
print(rows[0][:4])

# a file is iterable line by line
f = open("./data/wine/wine.csv")
count = 0
for line in f:
    count += 1
f.close()
print(count, "lines")

# how many samples of each class?
counts = {}
for line in lines[1:]:
    label = line.split(",")[0]
    counts[label] = counts.get(label, 0) + 1
print(counts)

# numpy reads it in one call
data = np.genfromtxt("./data/wine/wine.csv", delimiter=",", skip_header=1)
print(data.shape, data.dtype)
print(data[:, 0].min(), data[:, 0].max())
xy = np.loadtxt("./data/wine/wine.csv", delimiter=",", dtype=np.float32, skiprows=1)
x = torch.from_numpy(xy[:, 1:])
print(x.shape, x.dtype)
print(f"mean alcohol: {x[:, 0].mean().item():.4f}")
