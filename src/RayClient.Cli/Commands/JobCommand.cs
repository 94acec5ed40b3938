using System.CommandLine;

namespace RayClient.Cli.Commands;

/// <summary><c>rayclient job</c>: Ray's <c>ray job</c> commands against a cluster's Jobs API (or the embedded server's).</summary>
internal static class JobCommand
{
    public static Command Create(TextWriter output, TextWriter error, TimeSpan? pollInterval = null)
    {
        var cli = new JobCli(output, error) { PollInterval = pollInterval ?? TimeSpan.FromSeconds(1) };
        var command = new Command("job", "Submit, stop, delete, or list Ray jobs (Ray's Jobs API on the dashboard, port 8265).");
        command.Subcommands.Add(JobSubmitCommand.Create(cli));
        command.Subcommands.Add(JobStatusCommand.Create(cli));
        command.Subcommands.Add(JobLogsCommand.Create(cli));
        command.Subcommands.Add(JobStopCommand.Create(cli));
        command.Subcommands.Add(JobListCommand.Create(cli));
        command.Subcommands.Add(JobDeleteCommand.Create(cli));
        return command;
    }
}
