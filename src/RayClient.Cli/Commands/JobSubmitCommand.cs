using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using RayClient.Jobs;
using RayClient.Packaging;

namespace RayClient.Cli.Commands;

/// <summary>
/// <c>rayclient job submit [OPTIONS] -- ENTRYPOINT...</c>, as Ray's <c>ray job submit</c>: the
/// arguments after <c>--</c> are joined with shell quoting into the entrypoint; a local working dir
/// is packaged and uploaded (with progress); without <c>--no-wait</c> the logs are streamed until
/// the job ends, and the exit code is 1 when it FAILED.
/// </summary>
internal static class JobSubmitCommand
{
    private const long ZipProgressStepBytes = 16L * 1024 * 1024;

    public static Command Create(JobCli cli)
    {
        var submissionId = new Option<string?>("--submission-id") { Description = "Submission ID to specify for the job. If not provided, one will be generated." };
        var jobId = new Option<string?>("--job-id") { Description = "DEPRECATED: Use `--submission-id` instead.", Hidden = true };
        var runtimeEnv = new Option<string?>("--runtime-env") { Description = "Path to a local YAML file containing a runtime_env definition." };
        var runtimeEnvJson = new Option<string?>("--runtime-env-json") { Description = "JSON-serialized runtime_env dictionary." };
        var workingDir = new Option<string?>("--working-dir")
        {
            Description = "Directory containing files that your job will run in. Can be a local directory or a remote URI to a .zip file (S3, GS, HTTP). If specified, this overrides the option in `--runtime-env`.",
        };
        var metadataJson = new Option<string?>("--metadata-json") { Description = "JSON-serialized dictionary of metadata to attach to the job." };
        var cpus = new Option<double?>("--entrypoint-num-cpus") { Description = "The quantity of CPU cores to reserve for the entrypoint command, separately from any tasks or actors that are launched by it." };
        var gpus = new Option<double?>("--entrypoint-num-gpus") { Description = "The quantity of GPUs to reserve for the entrypoint command, separately from any tasks or actors that are launched by it." };
        var memory = new Option<long?>("--entrypoint-memory") { Description = "The amount of memory (bytes) to reserve for the entrypoint command, separately from any tasks or actors that are launched by it." };
        var resources = new Option<string?>("--entrypoint-resources") { Description = "A JSON-serialized dictionary mapping resource name to resource quantity to reserve for the entrypoint command." };
        var noWait = new Option<bool>("--no-wait") { Description = "If set, will not stream logs and wait for the job to exit." };
        var entrypoint = new Argument<string[]>("entrypoint")
        {
            Description = "The command to run, after '--' (e.g. -- python script.py --arg=val); the words are joined with shell quoting.",
            Arity = ArgumentArity.OneOrMore,
        };

        var command = cli.AddCommonOptions(new Command("submit", "Submits a job to be run on the cluster. By default (if --no-wait is not set), streams logs to stdout until the job finishes. If the job succeeded, exits with 0. If it failed, exits with 1."));
        foreach (var option in new Option[] { submissionId, jobId, runtimeEnv, runtimeEnvJson, workingDir, metadataJson, cpus, gpus, memory, resources, noWait })
        {
            command.Options.Add(option);
        }

        command.Arguments.Add(entrypoint);
        command.SetAction((parse, cancellationToken) => cli.RunAsync(async () =>
        {
            var deprecatedId = parse.GetValue(jobId);
            if (!string.IsNullOrEmpty(deprecatedId))
            {
                await cli.Error.WriteLineAsync("warning: --job-id option is deprecated. Please use --submission-id instead.").ConfigureAwait(false);
            }

            var env = await BuildRuntimeEnvAsync(cli, parse.GetValue(runtimeEnv), parse.GetValue(runtimeEnvJson), parse.GetValue(workingDir)).ConfigureAwait(false);
            var submission = new JobSubmission(JobCli.JoinEntrypoint(parse.GetValue(entrypoint)!))
            {
                SubmissionId = parse.GetValue(submissionId) is { Length: > 0 } id ? id : deprecatedId,
                RuntimeEnv = env,
                Metadata = parse.GetValue(metadataJson) is { } metadata ? ParseMetadata(metadata) : null,
                EntrypointNumCpus = parse.GetValue(cpus),
                EntrypointNumGpus = parse.GetValue(gpus),
                EntrypointMemory = parse.GetValue(memory),
                EntrypointResources = parse.GetValue(resources) is { } r ? ParseResources(r) : null,
            };

            using var client = await cli.CreateClientAsync(parse).ConfigureAwait(false);
            var submitted = await client.SubmitJobAsync(submission, new ProgressPrinter(cli.Output), cancellationToken).ConfigureAwait(false);

            await cli.BannerAsync($"Job '{submitted}' submitted successfully").ConfigureAwait(false);
            await cli.Output.WriteLineAsync("Next steps").ConfigureAwait(false);
            await cli.Output.WriteLineAsync("  Query the logs of the job:").ConfigureAwait(false);
            await cli.Output.WriteLineAsync($"    rayclient job logs {submitted}").ConfigureAwait(false);
            await cli.Output.WriteLineAsync("  Query the status of the job:").ConfigureAwait(false);
            await cli.Output.WriteLineAsync($"    rayclient job status {submitted}").ConfigureAwait(false);
            await cli.Output.WriteLineAsync("  Request the job to be stopped:").ConfigureAwait(false);
            await cli.Output.WriteLineAsync($"    rayclient job stop {submitted}").ConfigureAwait(false);
            await cli.Output.WriteLineAsync().ConfigureAwait(false);

            // Flushed at once so that wrappers can scrape the id (Ray PR #52780).
            await cli.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (parse.GetValue(noWait))
            {
                return 0;
            }

            await cli.Output.WriteLineAsync("Tailing logs until the job exits (disable with --no-wait):").ConfigureAwait(false);
            var status = await cli.FollowAsync(client, submitted, cancellationToken).ConfigureAwait(false);
            return status switch
            {
                null => 130,
                JobStatus.Failed => 1,
                _ => 0,
            };
        }));
        return command;
    }

    /// <summary>
    /// Ray's <c>parse_runtime_env_args</c>: a YAML file (<c>yaml.safe_load</c>) or JSON, validated as a
    /// runtime env, then <c>--working-dir</c> over it.
    /// </summary>
    private static async Task<RuntimeEnv?> BuildRuntimeEnvAsync(JobCli cli, string? yamlPath, string? json, string? workingDir)
    {
        RuntimeEnv? env = null;
        if (yamlPath is not null)
        {
            if (json is not null)
            {
                throw new ArgumentException("Only one of --runtime-env and --runtime-env-json can be provided.");
            }

            var text = await File.ReadAllTextAsync(yamlPath).ConfigureAwait(false);
            try
            {
                env = RuntimeEnv.FromYaml(text);
            }
            catch (RayRuntimeEnvException e)
            {
                throw new ArgumentException($"Failed to read the runtime env file '{yamlPath}': {e.Message}", e);
            }
        }
        else if (json is not null)
        {
            // Checked here first for a message that names the option and shows an example.
            JobCli.ParseObject(json, "--runtime-env-json", "{\"working_dir\": \".\", \"pip\": [\"requests\"]}");
            env = RuntimeEnv.FromJson(json);
        }

        if (workingDir is not null)
        {
            if (env?.WorkingDir is not null)
            {
                await cli.Error.WriteLineAsync("warning: Overriding runtime_env working_dir with --working-dir option").ConfigureAwait(false);
            }

            // A top-level key of the child replaces the parent's: only working_dir changes.
            env = RuntimeEnv.Merge(env, new RuntimeEnv { WorkingDir = workingDir });
        }

        return env;
    }

    /// <summary>Ray's <c>parse_metadata_json</c>: an object of strings.</summary>
    private static Dictionary<string, string> ParseMetadata(string json)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in JobCli.ParseObject(json, "--metadata-json", "{\"owner\": \"alice\"}"))
        {
            if (value?.GetValueKind() != JsonValueKind.String)
            {
                throw new ArgumentException($"--metadata-json values must be strings; '{key}' is {value?.ToJsonString() ?? "null"}.");
            }

            result[key] = value.GetValue<string>();
        }

        return result;
    }

    /// <summary>Ray's <c>parse_resources_json</c>: an object of numbers.</summary>
    private static Dictionary<string, double> ParseResources(string json)
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (key, value) in JobCli.ParseObject(json, "--entrypoint-resources", "{\"custom_resource\": 1}"))
        {
            if (value?.GetValueKind() != JsonValueKind.Number)
            {
                throw new ArgumentException($"--entrypoint-resources values must be numbers; '{key}' is {value?.ToJsonString() ?? "null"}.");
            }

            result[key] = value.GetValue<double>();
        }

        return result;
    }

    /// <summary>Prints upload stages as they happen (synchronously, so lines keep their order).</summary>
    private sealed class ProgressPrinter(TextWriter output) : IProgress<UploadProgress>
    {
        private long _nextZipReport = ZipProgressStepBytes;

        public void Report(UploadProgress value)
        {
            switch (value.Stage)
            {
                case UploadStage.Hashing:
                    _nextZipReport = ZipProgressStepBytes;
                    break;
                case UploadStage.Zipping when value.Bytes >= _nextZipReport:
                    output.WriteLine($"Packing {value.Field} {value.LocalPath}: {MiB(value.Bytes)} so far");
                    _nextZipReport = value.Bytes + ZipProgressStepBytes;
                    break;
                case UploadStage.Uploading:
                    output.WriteLine($"Uploading package {value.Uri} ({MiB(value.Bytes)}) for {value.Field} {value.LocalPath}.");
                    break;
                case UploadStage.Uploaded:
                    output.WriteLine($"Uploaded package {value.Uri}.");
                    break;
                case UploadStage.AlreadyPresent:
                    output.WriteLine($"Package {value.Uri} already exists, skipping upload.");
                    break;
            }

            output.Flush();
        }

        private static string MiB(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("0.0 'MiB'", CultureInfo.InvariantCulture);
    }
}
