# output = w*x + b
# output = activation_function(output)
import torch
import torch.nn as nn
import torch.nn.functional as F

x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])

# sofmax
output = torch.softmax(x, dim=0)
print(output)
sm = nn.Softmax(dim=0)
output = sm(x)
print(output)

# sigmoid
output = torch.sigmoid(x)
print(output)
s = nn.Sigmoid()
output = s(x)
print(output)

# tanh
output = torch.tanh(x)
print(output)
t = nn.Tanh()
output = t(x)
print(output)

# relu
output = torch.relu(x)
print(output)
relu = nn.ReLU()
output = relu(x)
print(output)

# leaky relu
output = F.leaky_relu(x)
print(output)
lrelu = nn.LeakyReLU(0.1)
output = lrelu(x)
print(output)


# nn.ReLU() creates an nn.Module which you can add e.g. to an nn.Sequential model.
# torch.relu on the other side is just the functional API call to the relu function,
# so that you can add it e.g. in your forward method yourself.


# option 1 (create nn modules)
class NeuralNet(nn.Module):
    def __init__(self, input_size, hidden_size):
        super(NeuralNet, self).__init__()
        self.linear1 = nn.Linear(input_size, hidden_size)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(hidden_size, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        out = self.linear1(x)
        out = self.relu(out)
        out = self.linear2(out)
        out = self.sigmoid(out)
        return out


# option 2 (use activation functions directly in forward pass)
class NeuralNet2(nn.Module):
    def __init__(self, input_size, hidden_size):
        super(NeuralNet2, self).__init__()
        self.linear1 = nn.Linear(input_size, hidden_size)
        self.linear2 = nn.Linear(hidden_size, 1)

    def forward(self, x):
        out = torch.relu(self.linear1(x))
        out = torch.sigmoid(self.linear2(out))
        return out


model = NeuralNet(input_size=5, hidden_size=3)
print(model)
out = model(x)
print(out.shape, f"{out.item():.4f}")
model2 = NeuralNet2(5, 3)
print(f"{model2(x).item():.4f}")

# the gradients of the activations: sigmoid's vanish far from 0, relu's are 0 below 0
x = torch.linspace(-6, 6, 5, requires_grad=True)
y = torch.sigmoid(x).sum()
y.backward()
print("sigmoid grad", x.grad)
x.grad.zero_()
torch.relu(x).sum().backward()
print("relu grad", x.grad)
x.grad.zero_()
F.leaky_relu(x, negative_slope=0.01).sum().backward()
print("leaky relu grad", x.grad)
