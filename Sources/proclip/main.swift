import ArgumentParser

ProclipCommand.main()
