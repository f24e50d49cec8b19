import numpy as np
import torch
import torch.nn as nn
from sklearn import datasets

X_numpy, y_numpy = datasets.make_regression(n_samples=10, n_features=2, noise=1, random_state=0)
print(X_numpy.dtype)

model = nn.Linear(2, 1)
X_good = torch.from_numpy(X_numpy.astype(np.float32))
print(model(X_good).shape)

# forgot .astype(np.float32): numpy gives float64 (torch.double)
X = torch.from_numpy(X_numpy)
print(X.dtype)
y_pred = model(X)
print(y_pred)
