using System.Text;
using System.Text.RegularExpressions;

namespace RayClient.Packaging;

/// <summary>
/// One gitignore-style ("gitwildmatch") pattern, translated to a regular expression the way the
/// <c>pathspec</c> library vendored by Ray does it
/// (ray:python/ray/_private/thirdparty/pathspec/patterns/gitwildmatch.py), so that a path is
/// excluded exactly when Ray's packager would exclude it.
/// </summary>
/// <remarks>
/// Written by hand rather than taken from a .NET gitignore library: Ray does not ask "is this
/// path ignored by git", it matches <c>str(relative path)</c> — no trailing slash for directories,
/// <c>"."</c> for the base directory itself — against each pattern's regex. That gives results git
/// never would (<c>dir/</c> matches only the contents of <c>dir</c>, not <c>dir</c>; <c>.*</c>
/// matches <c>"."</c> and so excludes the whole package), and they change the package hash.
/// </remarks>
internal sealed class GitWildMatchPattern
{
    private readonly Regex _regex;

    private GitWildMatchPattern(string pattern, Regex regex, bool include)
    {
        Pattern = pattern;
        _regex = regex;
        Include = include;
    }

    /// <summary>The pattern as written.</summary>
    public string Pattern { get; }

    /// <summary>True for an excluding pattern, false for a negated (<c>!</c>) one.</summary>
    public bool Include { get; }

    /// <summary>The translated regular expression (for diagnostics and tests).</summary>
    public string RegexText => _regex.ToString();

    /// <summary>Whether the '/'-separated relative path matches this pattern (ignoring <see cref="Include"/>).</summary>
    public bool IsMatch(string path) => _regex.IsMatch(path);

    /// <summary>
    /// Parses one line. Returns null for blank lines, comments and the lone <c>/</c>, which pathspec
    /// treats as no-ops.
    /// </summary>
    /// <exception cref="ArgumentException">The pattern cannot be translated (pathspec raises too).</exception>
    public static GitWildMatchPattern? Parse(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var pattern = PyStrip(line);
        if (pattern.Length == 0 || pattern[0] == '#' || pattern == "/")
        {
            return null;
        }

        var include = true;
        if (pattern[0] == '!')
        {
            include = false;
            pattern = pattern[1..];
        }

        if (pattern.StartsWith('\\'))
        {
            // A leading backslash only escapes '#' or '!'; pathspec drops it.
            pattern = pattern[1..];
        }

        var segments = new List<string>(pattern.Split('/'));
        if (segments[0].Length == 0)
        {
            // Leading slash: anchored at the base directory.
            segments.RemoveAt(0);
        }
        else if (segments.Count == 1 || (segments.Count == 2 && segments[1].Length == 0))
        {
            // No slash except maybe a trailing one: matches at any depth, i.e. "**/<pattern>".
            if (segments[0] != "**")
            {
                segments.Insert(0, "**");
            }
        }

        if (segments.Count == 0)
        {
            throw new ArgumentException($"Invalid gitwildmatch pattern '{line}'.", nameof(line));
        }

        if (segments[^1].Length == 0 && segments.Count > 1)
        {
            // Trailing slash: everything below the directory, i.e. "<pattern>/**". The directory
            // itself does not match (Ray never appends '/' to directory paths).
            segments[^1] = "**";
        }

        var regex = new StringBuilder("^");
        var needSlash = false;
        var end = segments.Count - 1;
        for (var i = 0; i < segments.Count; i++)
        {
            var segment = segments[i];
            if (segment == "**")
            {
                if (i == 0 && i == end)
                {
                    regex.Append(".+");
                }
                else if (i == 0)
                {
                    regex.Append("(?:.+/)?");
                    needSlash = false;
                }
                else if (i == end)
                {
                    regex.Append("/.*");
                }
                else
                {
                    regex.Append("(?:/.+)?");
                    needSlash = true;
                }
            }
            else if (segment == "*")
            {
                if (needSlash)
                {
                    regex.Append('/');
                }

                regex.Append("[^/]+");
                needSlash = true;
            }
            else
            {
                if (needSlash)
                {
                    regex.Append('/');
                }

                TranslateSegmentGlob(segment, regex);
                if (i == end && include)
                {
                    // "foo" also matches everything below a directory "foo" (not for negations).
                    regex.Append("(?:/.*)?");
                }

                needSlash = true;
            }
        }

        regex.Append('$');
        try
        {
            return new GitWildMatchPattern(line, new Regex(regex.ToString(), RegexOptions.CultureInvariant), include);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"Invalid gitwildmatch pattern '{line}': {e.Message}", nameof(line), e);
        }
    }

    /// <summary>Translates one path segment's glob: <c>*</c>, <c>?</c>, <c>[...]</c> and backslash escapes.</summary>
    private static void TranslateSegmentGlob(string glob, StringBuilder regex)
    {
        var escape = false;
        var i = 0;
        var end = glob.Length;
        while (i < end)
        {
            var c = glob[i];
            i++;
            if (escape)
            {
                escape = false;
                regex.Append(Regex.Escape(c.ToString()));
            }
            else if (c == '\\')
            {
                escape = true;
            }
            else if (c == '*')
            {
                regex.Append("[^/]*");
            }
            else if (c == '?')
            {
                regex.Append("[^/]");
            }
            else if (c == '[')
            {
                // Find the closing bracket; a ']' right after '[' or '[!' is a literal member.
                var j = i;
                if (j < end && glob[j] == '!')
                {
                    j++;
                }

                if (j < end && glob[j] == ']')
                {
                    j++;
                }

                while (j < end && glob[j] != ']')
                {
                    j++;
                }

                if (j < end)
                {
                    j++;
                    regex.Append('[');
                    if (glob[i] == '!')
                    {
                        regex.Append('^');
                        i++;
                    }
                    else if (glob[i] == '^')
                    {
                        // pathspec (the version Ray vendors) keeps '^' literal, as fnmatch does.
                        regex.Append("\\^");
                        i++;
                    }

                    // Python's regex treats '[' inside a class as a literal; .NET would read "-[" as
                    // class subtraction, so escape it. Backslashes are literal, as in pathspec.
                    foreach (var member in glob.AsSpan(i, j - i))
                    {
                        switch (member)
                        {
                            case '\\':
                                regex.Append("\\\\");
                                break;
                            case '[':
                                regex.Append("\\[");
                                break;
                            default:
                                regex.Append(member);
                                break;
                        }
                    }

                    i = j;
                }
                else
                {
                    regex.Append("\\[");
                }
            }
            else
            {
                regex.Append(Regex.Escape(c.ToString()));
            }
        }
    }

    /// <summary>Python's <c>str.strip()</c>: also strips the separators U+001C–U+001F that .NET does not count as white space.</summary>
    internal static string PyStrip(string s) =>
        s.Trim().Trim('\u001c', '\u001d', '\u001e', '\u001f').Trim();
}

/// <summary>
/// A list of gitwildmatch patterns applied as pathspec's <c>PathSpec.match_file</c>: the last
/// pattern that matches decides (a negated pattern re-includes), no match means not excluded.
/// </summary>
internal sealed class GitWildMatchSpec
{
    private readonly GitWildMatchPattern[] _patterns;

    private GitWildMatchSpec(GitWildMatchPattern[] patterns) => _patterns = patterns;

    /// <summary>True when no pattern can match.</summary>
    public bool IsEmpty => _patterns.Length == 0;

    /// <summary>Builds a spec from lines (blank lines and comments are skipped).</summary>
    /// <exception cref="RayRuntimeEnvException">A pattern cannot be translated.</exception>
    public static GitWildMatchSpec FromLines(IEnumerable<string> lines, string source)
    {
        var patterns = new List<GitWildMatchPattern>();
        foreach (var line in lines)
        {
            GitWildMatchPattern? pattern;
            try
            {
                pattern = GitWildMatchPattern.Parse(line);
            }
            catch (ArgumentException e)
            {
                throw new RayRuntimeEnvException($"{source}: {e.Message}", e);
            }

            if (pattern is not null)
            {
                patterns.Add(pattern);
            }
        }

        return new GitWildMatchSpec([.. patterns]);
    }

    /// <summary>Whether the '/'-separated path relative to the spec's base is excluded.</summary>
    public bool Matches(string path)
    {
        var matched = false;
        foreach (var pattern in _patterns)
        {
            if (pattern.IsMatch(path))
            {
                matched = pattern.Include;
            }
        }

        return matched;
    }
}
