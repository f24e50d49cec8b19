import torch
import torch.nn as nn

# use the GPU if there is one
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(device)
print(torch.cuda.is_available())

x = torch.ones(2, 3)
x = x.to(device)
print(x.device)
y = torch.ones(2, 3, device=device)
z = x + y
print(z)

model = nn.Linear(3, 1).to(device)
print(next(model.parameters()).device)
out = model(z)
print(out.shape, out.device)

# numpy only works on the cpu
result = out.cpu().detach().numpy()
print(result.shape, type(result))

if torch.cuda.is_available():
    print("training on the GPU")
else:
    print("training on the CPU")

cpu = torch.device("cpu")
print(cpu, cpu.type, torch.device("cpu") == device)
w = torch.zeros(3, requires_grad=True, device=device)
print(w.is_leaf, w.device)
