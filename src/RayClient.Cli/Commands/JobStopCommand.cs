using System.CommandLine;
using RayClient.Jobs;

namespace RayClient.Cli.Commands;

/// <summary>
/// <c>rayclient job stop [--no-wait] JOB_ID</c>: asks the job to stop, then (unless
/// <c>--no-wait</c>) polls every second until it has ended, printing Ray's lines.
/// </summary>
internal static class JobStopCommand
{
    public static Command Create(JobCli cli)
    {
        var jobId = new Argument<string>("job-id") { Description = "The submission id of the job." };
        var noWait = new Option<bool>("--no-wait") { Description = "If set, will not wait for the job to exit." };
        var command = cli.AddCommonOptions(new Command("stop", "Attempts to stop a job."));
        command.Arguments.Add(jobId);
        command.Options.Add(noWait);
        command.SetAction((parse, cancellationToken) => cli.RunAsync(async () =>
        {
            using var client = await cli.CreateClientAsync(parse).ConfigureAwait(false);
            var id = parse.GetValue(jobId)!;
            await cli.Output.WriteLineAsync($"Attempting to stop job '{id}'").ConfigureAwait(false);
            await client.StopJobAsync(id, cancellationToken).ConfigureAwait(false);
            if (parse.GetValue(noWait))
            {
                return 0;
            }

            await cli.Output.WriteLineAsync($"Waiting for job '{id}' to exit (disable with --no-wait):").ConfigureAwait(false);
            while (true)
            {
                var status = await client.GetJobStatusAsync(id, cancellationToken).ConfigureAwait(false);
                if (status.IsTerminal())
                {
                    await cli.PrintStatusAsync(client, id, cancellationToken).ConfigureAwait(false);
                    return 0;
                }

                await cli.Output.WriteLineAsync($"Job has not exited yet. Status: {status.ToWireName()}").ConfigureAwait(false);
                await Task.Delay(cli.PollInterval, cancellationToken).ConfigureAwait(false);
            }
        }));
        return command;
    }
}
