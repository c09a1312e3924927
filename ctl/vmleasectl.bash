# bash completion for vmleasectl(1)                        -*- shell-script -*-
#
# Installed to bash-completion's completionsdir as "vmleasectl", where it is
# loaded on demand the first time vmleasectl is completed.

# Machine names and lease owners, from the agent itself (same -H as typed).
__vmleasectl_owners() {
    local -a host=()
    local i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            -H | --host) host=(--host "${words[i + 1]}") ;;
            --host=*) host=("${words[i]}") ;;
        esac
    done
    {
        vmleasectl "${host[@]}" --no-legend --no-pager machines 2>/dev/null | awk '{ print $1 }'
        # list: DISK RESOURCE OWNER MODE STATE
        vmleasectl "${host[@]}" --no-legend --no-pager list 2>/dev/null | awk 'NF >= 5 && $3 != "-" { print $3 }'
    } | sort -u
}

# File names for DISK. Readline breaks words at ":" (COMP_WORDBREAKS), so
# what is offered must start after the last colon of the word being typed.
__vmleasectl_files() {
    _filedir
    __ltrim_colon_completions "$cur"
}

_vmleasectl() {
    local cur prev words cword split
    # -s: "--json=sh" completes like "--json sh"; -n : keeps by-path names
    # (ip-192.0.2.8:3260-...) and the PATH:shared syntax in one word.
    _init_completion -s -n : || return

    local verbs='status list machines inspect acquire release register
                 release-machine resume cleanup reload monitor'
    local opts_global='-h --help --version --json= --no-legend --no-pager
                       --no-ask-password -H --host= --system'

    case $prev in
        --json)
            COMPREPLY=($(compgen -W 'short pretty off' -- "$cur"))
            return
            ;;
        -H | --host)
            _known_hosts_real -- "$cur"
            return
            ;;
        --grace)
            return # seconds: nothing to offer
            ;;
    esac
    $split && return

    # Find the verb and how many positional arguments follow it.
    local i verb='' npos=0
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            -H | --host | --json | --grace)
                # An option whose value is the next word (not "--opt=value").
                ((i++))
                ;;
            -*) ;;
            *)
                if [[ -z $verb ]]; then
                    verb=${words[i]}
                else
                    ((npos++))
                fi
                ;;
        esac
    done

    local opts_verb=''
    case $verb in
        acquire) opts_verb='--shared' ;;
        register) opts_verb='--grace=' ;;
        cleanup) opts_verb='--dry-run' ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts_global $opts_verb" -- "$cur"))
        [[ ${COMPREPLY-} == *= ]] && compopt -o nospace
        return
    fi

    if [[ -z $verb ]]; then
        COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
        return
    fi

    # npos counts the arguments already given after the verb: 0 means cur is
    # the first one (OWNER for most verbs, DISK for inspect).
    case $verb in
        inspect)
            ((npos == 0)) && __vmleasectl_files
            ;;
        acquire | release)
            if ((npos == 0)); then
                COMPREPLY=($(compgen -W "$(__vmleasectl_owners)" -- "$cur"))
            elif ((npos == 1)); then
                __vmleasectl_files
            fi
            ;;
        register)
            if ((npos == 0)); then
                COMPREPLY=($(compgen -W "$(__vmleasectl_owners)" -- "$cur"))
            elif [[ $cur == *:* && -e ${cur%:*} ]]; then
                # PATH:mode -- complete the mode after the last colon.
                local path=${cur%:*}
                COMPREPLY=($(compgen -P "$path:" -W 'exclusive shared none' -- "${cur##*:}"))
                __ltrim_colon_completions "$cur"
            else
                __vmleasectl_files
            fi
            ;;
        release-machine | resume)
            ((npos == 0)) && COMPREPLY=($(compgen -W "$(__vmleasectl_owners)" -- "$cur"))
            ;;
    esac
    return 0
} &&
    complete -F _vmleasectl vmleasectl

# ex: filetype=sh
