import torch
import torch.nn as nn


class NeuralNet(nn.Module):
    def __init__(self, input_size, hidden_size, num_classes):
        super(NeuralNet, self).__init__()
        self.l1 = nn.Linear(input_size, hidden_size)
        self.relu = nn.ReLU()
        self.l2 = nn.Linear(hidden_size * 2, num_classes)

    def forward(self, x):
        out = self.l1(x)
        print("after l1:", out.shape)
        out = self.relu(out)
        out = self.l2(out)
        return out


model = NeuralNet(input_size=4, hidden_size=8, num_classes=3)
print(model)
x = torch.randn(5, 4)
print(x.shape)
outputs = model(x)
print(outputs.shape)
