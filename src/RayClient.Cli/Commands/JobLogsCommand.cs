using System.CommandLine;

namespace RayClient.Cli.Commands;

/// <summary>
/// <c>rayclient job logs [-f] JOB_ID</c>: prints the whole log, or with <c>--follow</c> streams it
/// until the job ends and prints its status (exit code 0 either way, as Ray).
/// </summary>
internal static class JobLogsCommand
{
    public static Command Create(JobCli cli)
    {
        var jobId = new Argument<string>("job-id") { Description = "The submission id of the job." };
        var follow = new Option<bool>("--follow", "-f") { Description = "If set, follow the logs (like `tail -f`)." };
        var command = cli.AddCommonOptions(new Command("logs", "Gets the logs of a job."));
        command.Arguments.Add(jobId);
        command.Options.Add(follow);
        command.SetAction((parse, cancellationToken) => cli.RunAsync(async () =>
        {
            using var client = await cli.CreateClientAsync(parse).ConfigureAwait(false);
            var id = parse.GetValue(jobId)!;
            if (parse.GetValue(follow))
            {
                var status = await cli.FollowAsync(client, id, cancellationToken).ConfigureAwait(false);
                return status is null ? 130 : 0;
            }

            await cli.Output.WriteAsync(await client.GetJobLogsAsync(id, cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);
            return 0;
        }));
        return command;
    }
}
