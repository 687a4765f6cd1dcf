#part-handler
def list_types():
    return ["text/x-custom"]

def handle_part(data, ctype, filename, payload):
    pass
