using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RayClient.Tests.RuntimeEnvs;

/// <summary>
/// An independent Python implementation of Ray's documented packaging algorithm (spec §8.3–8.5),
/// written from the spec rather than from the C# code: gitwildmatch is done segment by segment
/// with <c>fnmatch</c> (no regex translation), the traversal with <c>os.listdir</c>. It also lists
/// a zip with Python's own <c>zipfile</c>. Standard library only.
/// </summary>
internal static class PythonReference
{
    private const string Script = """
import fnmatch, hashlib, json, os, sys, zipfile

def seg_match(pat, parts):
    if not pat:
        return not parts
    if pat[0] == '**':
        return any(seg_match(pat[1:], parts[k:]) for k in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pat[0]) and seg_match(pat[1:], parts[1:])

def pattern_matches(pattern, path):
    # A match of the path or of one of its ancestors counts (below a match everything matches);
    # "dir/" matches only strictly below a directory called dir. No slash except a trailing one:
    # any depth; otherwise anchored at the base.
    dir_only = pattern.endswith('/')
    body = pattern.rstrip('/')
    anchored = '/' in body
    segs = body.lstrip('/').split('/')
    if not anchored:
        segs = ['**'] + segs
    parts = path.split('/')
    limit = len(parts) - 1 if dir_only else len(parts)
    return any(seg_match(segs, parts[:k]) for k in range(1, limit + 1))

def spec_matches(lines, path):
    matched = False
    for line in lines:
        p = line.strip()
        if not p or p.startswith('#'):
            continue
        include = not p.startswith('!')
        if not include:
            p = p[1:]
        if pattern_matches(p, path):
            matched = include
    return matched

def travel(root, excludes, include_gitignore, handler):
    specs = [([], excludes)] if excludes else []
    def relative(base, parts):
        rest = parts[len(base):]
        return '/'.join(rest) if rest else '.'
    def visit(full, parts):
        pushed = 0
        if os.path.isdir(full):
            for name in (['.gitignore'] if include_gitignore else []) + ['.rayignore']:
                f = os.path.join(full, name)
                if os.path.isfile(f):
                    with open(f, encoding='utf-8') as fh:
                        specs.append((parts, fh.read().split('\n')))
                    pushed += 1
        try:
            if any(spec_matches(lines, relative(base, parts)) for base, lines in specs):
                return
            handler(full, parts)
            if os.path.isdir(full):
                for name in os.listdir(full):
                    visit(os.path.join(full, name), parts + [name])
        finally:
            for _ in range(pushed):
                specs.pop()
    visit(root, [])

def main():
    cfg = json.loads(sys.argv[1])
    root = cfg['root']
    acc = [b'00000000']
    entries = []
    prefix = cfg.get('prefix')
    def handler(full, parts):
        rel = os.path.join(*parts) if parts else '.'
        h = hashlib.sha1(rel.encode('utf-8'))
        if not os.path.isdir(full):
            with open(full, 'rb') as f:
                h.update(f.read())
        acc[0] = bytes(a ^ b for a, b in zip(acc[0], h.digest()))
        name = '/'.join(parts) if parts else '.'
        if prefix:
            name = prefix if name == '.' else prefix + '/' + name
        if os.path.isdir(full):
            if not os.listdir(full):
                entries.append(name + '/')
        elif os.path.isfile(full):
            entries.append(name)
    travel(root, cfg['excludes'], cfg['include_gitignore'], handler)
    out = {'uri': 'gcs://_ray_pkg_' + acc[0].hex() + '.zip', 'entries': sorted(entries)}
    if cfg.get('zip'):
        with zipfile.ZipFile(cfg['zip']) as z:
            assert z.testzip() is None
            out['zip'] = [[i.filename, i.compress_type, i.file_size] for i in z.infolist()]
            out['contents'] = {i.filename: z.read(i).hex() for i in z.infolist() if not i.is_dir()}
    print(json.dumps(out))

main()
""";

    private static readonly Lazy<string> s_executable = new(ResolveExecutable);

    /// <summary>What the Python reference computes for a tree.</summary>
    public sealed record Result(string Uri, IReadOnlyList<string> Entries, IReadOnlyList<(string Name, int CompressType, long Size)>? Zip, IReadOnlyDictionary<string, string>? Contents);

    /// <summary>The interpreter, resolved once: <c>python3</c> on PATH may be a slow launcher.</summary>
    public static string Executable => s_executable.Value;

    /// <summary>Hashes <paramref name="root"/> (and lists <paramref name="zipPath"/> if given) in Python.</summary>
    public static Result Compute(string root, IEnumerable<string> excludes, bool includeGitignore = true, string? zipPath = null, string? prefix = null)
    {
        var config = new JsonObject
        {
            ["root"] = root,
            ["excludes"] = new JsonArray(excludes.Select(e => (JsonNode?)JsonValue.Create(e)).ToArray()),
            ["include_gitignore"] = includeGitignore,
            ["zip"] = zipPath,
            ["prefix"] = prefix,
        };
        var output = Run(Script, config.ToJsonString());
        var json = JsonNode.Parse(output)!.AsObject();
        var entries = json["entries"]!.AsArray().Select(e => e!.GetValue<string>()).ToList();
        List<(string, int, long)>? zip = null;
        Dictionary<string, string>? contents = null;
        if (json["zip"] is JsonArray infos)
        {
            zip = infos.Select(i => (i![0]!.GetValue<string>(), i[1]!.GetValue<int>(), i[2]!.GetValue<long>())).ToList();
            contents = json["contents"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>());
        }

        return new Result(json["uri"]!.GetValue<string>(), entries, zip, contents);
    }

    /// <summary>Runs a script with arguments; returns stdout, throws with stderr on failure.</summary>
    public static string Run(string script, params string[] args)
    {
        var file = Path.Combine(Path.GetTempPath(), $"rayclient_ref_{Guid.NewGuid():N}.py");
        File.WriteAllText(file, script);
        try
        {
            var start = new ProcessStartInfo(Executable)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            start.ArgumentList.Add(file);
            foreach (var arg in args)
            {
                start.ArgumentList.Add(arg);
            }

            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException("The Python reference did not finish within 60 s.");
            }

            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"Python failed ({process.ExitCode}): {stderr.Result}");
            }

            return stdout.Result;
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static string ResolveExecutable()
    {
        var start = new ProcessStartInfo("python3")
        {
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("import sys; print(sys.executable)");
        using var process = Process.Start(start)!;
        var path = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        return path.Length > 0 ? path : "python3";
    }
}

/// <summary>A temporary directory tree for a test, deleted on dispose.</summary>
internal sealed class TempTree : IDisposable
{
    public TempTree()
    {
        Root = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "rayclient_renv_" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Root);
    }

    public string Root { get; }

    public string Path(string relative) => System.IO.Path.Combine(Root, relative);

    public TempTree File(string relative, string content)
    {
        var full = Path(relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        System.IO.File.WriteAllText(full, content);
        return this;
    }

    public TempTree Bytes(string relative, byte[] content)
    {
        var full = Path(relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        System.IO.File.WriteAllBytes(full, content);
        return this;
    }

    public TempTree Dir(string relative)
    {
        Directory.CreateDirectory(Path(relative));
        return this;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
