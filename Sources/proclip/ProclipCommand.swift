import ArgumentParser

/// The `proclip` command: the composition root of the trainer.
struct ProclipCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proclip",
        abstract: "Progressive vision-language alignment (ProCLIP) trainer for CPU clusters.",
        version: proclipVersion,
        subcommands: [
            LaunchCommand.self,
            CoordinatorCommand.self,
            WorkerCommand.self,
            StatusCommand.self,
            KeysCommand.self,
            TrainCommand.self,
            EvalCommand.self,
            ReportCommand.self,
            GradCommand.self,
            BenchCommand.self,
            DataCommand.self,
            SynthCommand.self,
            CheckpointCommand.self,
        ])
}

/// The release of this build.
let proclipVersion = "0.1.0"
