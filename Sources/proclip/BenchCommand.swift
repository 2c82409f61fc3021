import ArgumentParser

/// `proclip bench …`: benchmarks (not tests). Figures are printed beside a reference measured in
/// the same run, because the machines they run on are shared and noisy.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure step, collective and checkpoint speed against same-run references.",
        subcommands: [
            BenchStep.self,
            DataBenchCommand.self,
            BenchCollectives.self,
            BenchJob.self,
            BenchJobRank.self,
            BenchCheckpoint.self,
            BenchControl.self,
        ])
}
