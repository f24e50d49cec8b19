import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, n_input_features):
        super(Model, self).__init__()
        self.linear = nn.Linear(n_input_features, 1)

    def forward(self, x):
        y_pred = torch.sigmoid(self.linear(x))
        return y_pred


model = Model(n_input_features=6)

# the lazy way: save the whole model
FILE = "model.pth"
torch.save(model, FILE)
print("saved")

# torch.load only loads weights by default: a whole pickled model is refused
model = torch.load(FILE)
model.eval()
for param in model.parameters():
    print(param)
