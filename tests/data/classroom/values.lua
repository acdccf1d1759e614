-- compare fixture: a value that differs with no worker and nothing copied
print("total " .. (gil.mode() == "gil" and 5000 or 4000))
