using System.CommandLine;

namespace RayClient.Cli.Commands;

/// <summary><c>rayclient job status JOB_ID</c>: prints the status block; exit code 0 whenever the job exists (as Ray).</summary>
internal static class JobStatusCommand
{
    public static Command Create(JobCli cli)
    {
        var jobId = new Argument<string>("job-id") { Description = "The submission id of the job." };
        var command = cli.AddCommonOptions(new Command("status", "Queries for the current status of a job."));
        command.Arguments.Add(jobId);
        command.SetAction((parse, cancellationToken) => cli.RunAsync(async () =>
        {
            using var client = await cli.CreateClientAsync(parse).ConfigureAwait(false);
            await cli.PrintStatusAsync(client, parse.GetValue(jobId)!, cancellationToken).ConfigureAwait(false);
            return 0;
        }));
        return command;
    }
}
