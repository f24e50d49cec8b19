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
learning_rate = 0.01
optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9)

# one training step, so that the optimizer has a momentum buffer to save
x = torch.randn(8, 6)
y = torch.ones(8, 1)
loss = nn.BCELoss()(model(x), y)
loss.backward()
optimizer.step()
optimizer.zero_grad()
print(f"loss: {loss.item():.4f}")

checkpoint = {"epoch": 90, "model_state": model.state_dict(), "optim_state": optimizer.state_dict()}
print(optimizer.state_dict()["param_groups"])

FILE = "checkpoint.pth"
torch.save(checkpoint, FILE)

loaded_checkpoint = torch.load(FILE)
print(sorted(loaded_checkpoint.keys()))
epoch = loaded_checkpoint["epoch"]

model = Model(n_input_features=6)
optimizer = torch.optim.SGD(model.parameters(), lr=0, momentum=0.9)

model.load_state_dict(checkpoint["model_state"])
optimizer.load_state_dict(checkpoint["optim_state"])
print(epoch)
print(optimizer.param_groups[0]["lr"])
print(optimizer.state_dict()["state"][0]["momentum_buffer"].shape)
print(torch.equal(model.linear.weight, loaded_checkpoint["model_state"]["linear.weight"]))

# continue training from the checkpoint
for epoch in range(epoch, epoch + 3):
    loss = nn.BCELoss()(model(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    print(f"epoch {epoch + 1}: loss = {loss.item():.4f}")
