raise ImportError("zoo_broken needs a library that is not installed")
